// torch.library registration of mmddetr::ms_deform_attn and its backward, and the shape checks both kernels share.
// Autograd and the fake (meta) kernels are registered from Python (mmddetr/ops/ms_deform_attn.py).
#include "ms_deform_attn.h"

#include <Python.h>
#include <torch/library.h>

namespace mmddetr {

void check_ms_deform_attn_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights) {
  TORCH_CHECK_VALUE(value.dim() == 4, "value: expected (bs, num_keys, num_heads, head_dims), got ", value.sizes());
  TORCH_CHECK_VALUE(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2 &&
                        spatial_shapes.scalar_type() == at::kLong,
                    "spatial_shapes: expected int64 (num_levels, 2), got ", spatial_shapes.scalar_type(), " ",
                    spatial_shapes.sizes());
  const int64_t num_levels = spatial_shapes.size(0);
  TORCH_CHECK_VALUE(level_start_index.dim() == 1 && level_start_index.size(0) == num_levels &&
                        level_start_index.scalar_type() == at::kLong,
                    "level_start_index: expected int64 (", num_levels, ",), got ", level_start_index.scalar_type(),
                    " ", level_start_index.sizes());
  const auto bs = value.size(0), heads = value.size(2);
  TORCH_CHECK_VALUE(sampling_locations.dim() == 6 && sampling_locations.size(0) == bs &&
                        sampling_locations.size(2) == heads && sampling_locations.size(3) == num_levels &&
                        sampling_locations.size(5) == 2,
                    "sampling_locations: expected (", bs, ", num_queries, ", heads, ", ", num_levels,
                    ", num_points, 2), got ", sampling_locations.sizes());
  TORCH_CHECK_VALUE(attention_weights.sizes() == sampling_locations.sizes().slice(0, 5),
                    "attention_weights: expected ", sampling_locations.sizes().slice(0, 5), ", got ",
                    attention_weights.sizes());
  const auto opmath = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK_VALUE(at::isFloatingType(value.scalar_type()), "value: expected a floating dtype, got ",
                    value.scalar_type());
  TORCH_CHECK_VALUE(sampling_locations.scalar_type() == opmath && attention_weights.scalar_type() == opmath,
                    "sampling_locations, attention_weights: expected ", opmath, " for ", value.scalar_type(),
                    " value, got ", sampling_locations.scalar_type(), ", ", attention_weights.scalar_type());
  for (const at::Tensor* t : {&spatial_shapes, &level_start_index, &sampling_locations, &attention_weights}) {
    TORCH_CHECK_VALUE(t->device() == value.device(), "all inputs must be on value's device ", value.device(),
                      ", got ", t->device());
  }
}

}  // namespace mmddetr

TORCH_LIBRARY(mmddetr, m) {
  m.def(
      "ms_deform_attn(Tensor value, Tensor spatial_shapes, Tensor level_start_index, Tensor sampling_locations, "
      "Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights, Tensor grad_output) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mmddetr, CPU, m) {
  m.impl("ms_deform_attn", &mmddetr::ms_deform_attn_cpu);
  m.impl("ms_deform_attn_backward", &mmddetr::ms_deform_attn_backward_cpu);
}

// Importing mmddetr._C loads this library, which runs the registrations above.
static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "mmddetr's compiled ops", -1, nullptr};
PyMODINIT_FUNC PyInit__C() { return PyModule_Create(&module_def); }
