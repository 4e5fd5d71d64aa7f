// torch.library registration of mmddetr::ms_deform_attn and its backward, and the op's input checks, which every
// kernel runs: the CPU and CUDA kernels all of them, the Meta kernels (what meta tensors and torch.compile /
// torch.export's fake tensors run) those that need no tensor data. The Python entry only converts its arguments.
// Autograd is registered from Python (mmddetr/ops/ms_deform_attn.py).
#include "ms_deform_attn.h"

#include <Python.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

// A ValueError in the op's one message format; the Python entry's users read it as the function's own.
#define MSDA_CHECK(condition, argument, ...) \
  TORCH_CHECK_VALUE(condition, "multi_scale_deformable_attn: ", argument, " must be ", __VA_ARGS__)

namespace mmddetr {
namespace {

// The kernels index with int64, except within one level (CPU: int32 pixel offsets) and the CUDA kernels' per-item
// counts (int32 heads, head dims and samples).
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

std::string shape(c10::SymIntArrayRef sizes) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < sizes.size(); ++i) out << (i > 0 ? ", " : "") << sizes[i];
  out << (sizes.size() == 1 ? ",)" : ")");
  return out.str();
}

std::string dtype_name(at::ScalarType type) { return std::string(c10::getDtypeNames(type).first); }

// Sizes are symbolic under torch.compile's dynamic shapes: comparing them adds guards, as a Python fake kernel's
// comparisons would.
void check_ms_deform_attn_shapes(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights) {
  const auto v = value.sym_sizes(), s = spatial_shapes.sym_sizes(), l = sampling_locations.sym_sizes();
  MSDA_CHECK(value.dim() == 4, "value", "a 4-d tensor (bs, num_keys, num_heads, head_dims), got ", shape(v));
  MSDA_CHECK(at::isFloatingType(value.scalar_type()), "value", "a floating-point tensor, got ",
             dtype_name(value.scalar_type()));
  MSDA_CHECK(spatial_shapes.dim() == 2 && s[1] == 2, "spatial_shapes", "a (num_levels, 2) tensor of (H, W), got ",
             shape(s));
  const c10::SymInt& num_levels = s[0];
  MSDA_CHECK(num_levels > 0, "spatial_shapes", "at least one level, got ", shape(s));
  MSDA_CHECK(spatial_shapes.scalar_type() == at::kLong, "spatial_shapes", "an int64 tensor, got ",
             dtype_name(spatial_shapes.scalar_type()));
  MSDA_CHECK(level_start_index.scalar_type() == at::kLong, "level_start_index", "an int64 tensor, got ",
             dtype_name(level_start_index.scalar_type()));
  MSDA_CHECK(level_start_index.dim() == 1 && level_start_index.sym_size(0) == num_levels, "level_start_index",
             "of shape (", num_levels, ",), got ", shape(level_start_index.sym_sizes()));
  MSDA_CHECK(sampling_locations.dim() == 6, "sampling_locations", "a 6-d tensor (", v[0], ", num_queries, ", v[2],
             ", ", num_levels, ", num_points, 2), got ", shape(l));
  const std::vector<c10::SymInt> points{v[0], l[1], v[2], num_levels, l[4]};  // of attention_weights
  MSDA_CHECK(l.slice(0, 5) == c10::SymIntArrayRef(points) && l[5] == 2, "sampling_locations", "of shape ",
             shape({v[0], l[1], v[2], num_levels, l[4], 2}), ", got ", shape(l));
  MSDA_CHECK(attention_weights.sym_sizes() == c10::SymIntArrayRef(points), "attention_weights", "of shape ",
             shape(points), ", got ", shape(attention_weights.sym_sizes()));
  const auto opmath = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  for (const auto& [argument, t] : {std::pair{"sampling_locations", &sampling_locations},
                                    std::pair{"attention_weights", &attention_weights}}) {
    MSDA_CHECK(t->scalar_type() == opmath, argument, dtype_name(opmath), " for ", dtype_name(value.scalar_type()),
               " value (multi_scale_deformable_attn converts any floating dtype to it), got ",
               dtype_name(t->scalar_type()));
  }
  for (const auto& [argument, t] :
       {std::pair{"sampling_locations", &sampling_locations}, std::pair{"attention_weights", &attention_weights},
        std::pair{"spatial_shapes", &spatial_shapes}, std::pair{"level_start_index", &level_start_index}}) {
    MSDA_CHECK(t->device() == value.device(), argument, "on value's device ", value.device(), ", got ", t->device());
  }
  MSDA_CHECK(v[2] <= kInt32Max && v[3] <= kInt32Max, "value",
             "of at most 2**31 - 1 heads and head dims (the CUDA kernels count them in int32), got ", shape(v));
  MSDA_CHECK(l[3] * l[4] <= kInt32Max, "sampling_locations",
             "of at most 2**31 - 1 levels x points (the CUDA kernels count them in int32), got ", shape(l));
}

// The levels' values, read on the host (on a GPU, a copy that waits for the device, as reading them always did).
void check_ms_deform_attn_levels(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index) {
  const auto shapes = spatial_shapes.to(at::kCPU).contiguous(), starts = level_start_index.to(at::kCPU).contiguous();
  const int64_t *hw = shapes.const_data_ptr<int64_t>(), *start = starts.const_data_ptr<int64_t>();
  const int64_t num_levels = shapes.size(0), num_keys = value.size(1);
  int64_t total = 0;
  for (int64_t level = 0; level < num_levels; ++level) {
    const int64_t h = hw[2 * level], w = hw[2 * level + 1];
    MSDA_CHECK(h > 0 && w > 0, "spatial_shapes", "positive (H, W) on every level, got (", h, ", ", w, ") at level ",
               level);
    MSDA_CHECK(w <= kInt32Max / h, "spatial_shapes",
               "at most 2**31 - 1 pixels (H*W) per level (the CPU kernel indexes within a level in int32), got (", h,
               ", ", w, ") at level ", level);
    total += h * w;  // at most num_levels * 2^31: no overflow
  }
  MSDA_CHECK(total == num_keys, "spatial_shapes", "levels whose H*W sum to value's num_keys ", num_keys,
             ", got levels summing to ", total);
  total = 0;
  for (int64_t level = 0; level < num_levels; ++level) {
    MSDA_CHECK(start[level] == total, "level_start_index", "the cumulative H*W of spatial_shapes, ", total,
               " at level ", level, ", got ", start[level]);
    total += hw[2 * level] * hw[2 * level + 1];
  }
}

// Meta kernels: the checks that need no data, and the outputs' shapes (contiguous, as the kernels return them).
at::Tensor ms_deform_attn_meta(const at::Tensor& value, const at::Tensor& spatial_shapes,
                               const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                               const at::Tensor& attention_weights) {
  check_ms_deform_attn_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  return at::empty_symint({value.sym_size(0), sampling_locations.sym_size(1), value.sym_size(2) * value.sym_size(3)},
                          value.options());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_meta(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  check_ms_deform_attn_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  check_ms_deform_attn_grad_output(value, sampling_locations, grad_output);
  return {at::empty_symint(value.sym_sizes(), value.options()),
          at::empty_symint(sampling_locations.sym_sizes(), sampling_locations.options()),
          at::empty_symint(attention_weights.sym_sizes(), attention_weights.options())};
}

// mmddetr::ms_deform_attn_check_inputs, on any device: what the Python entry runs before the PyTorch reference on
// devices without a kernel. Meta (and fake) tensors get the checks that need no data.
void check_inputs_op(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                     const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  if (value.is_meta()) {
    check_ms_deform_attn_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  } else {
    check_ms_deform_attn_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  }
}

}  // namespace

void check_ms_deform_attn_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights) {
  check_ms_deform_attn_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  check_ms_deform_attn_levels(value, spatial_shapes, level_start_index);
}

void check_ms_deform_attn_grad_output(const at::Tensor& value, const at::Tensor& sampling_locations,
                                      const at::Tensor& grad_output) {
  const std::vector<c10::SymInt> expected{value.sym_size(0), sampling_locations.sym_size(1),
                                          value.sym_size(2) * value.sym_size(3)};
  MSDA_CHECK(grad_output.sym_sizes() == c10::SymIntArrayRef(expected) &&
                 grad_output.scalar_type() == value.scalar_type() && grad_output.device() == value.device(),
             "grad_output", dtype_name(value.scalar_type()), " of shape ", shape(expected), " on ", value.device(),
             ", got ", dtype_name(grad_output.scalar_type()), " of shape ", shape(grad_output.sym_sizes()), " on ",
             grad_output.device());
}

}  // namespace mmddetr

TORCH_LIBRARY(mmddetr, m) {
  m.def(
      "ms_deform_attn(Tensor value, Tensor spatial_shapes, Tensor level_start_index, Tensor sampling_locations, "
      "Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights, Tensor grad_output) -> (Tensor, Tensor, Tensor)");
  m.def(
      "ms_deform_attn_check_inputs(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights) -> ()");
}

TORCH_LIBRARY_IMPL(mmddetr, CPU, m) {
  m.impl("ms_deform_attn", &mmddetr::ms_deform_attn_cpu);
  m.impl("ms_deform_attn_backward", &mmddetr::ms_deform_attn_backward_cpu);
}

TORCH_LIBRARY_IMPL(mmddetr, Meta, m) {
  m.impl("ms_deform_attn", &mmddetr::ms_deform_attn_meta);
  m.impl("ms_deform_attn_backward", &mmddetr::ms_deform_attn_backward_meta);
}

TORCH_LIBRARY_IMPL(mmddetr, CompositeExplicitAutograd, m) {
  m.impl("ms_deform_attn_check_inputs", &mmddetr::check_inputs_op);
}

// Importing mmddetr._C loads this library, which runs the registrations above.
static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "mmddetr's compiled ops", -1, nullptr};
PyMODINIT_FUNC PyInit__C() { return PyModule_Create(&module_def); }
