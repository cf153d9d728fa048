// The optional C++ part of gradviz's capture (`graphviz_grad.capture.native` builds and loads it).
//
// `Hooks(nodes)` puts one C++ pre-hook on each autograd node of a backward call. During the call
// the engine hands each hook the gradients flowing into its node (dLoss/dOutputs); the hook keeps
// them, with the order the nodes ran in, without entering Python: that is what a Python
// `Node.register_prehook` costs most (the GIL, a tuple of wrapped tensors and a Python call per
// node). Every `batch` op nodes (leaves not counted) it does call back into Python once, at the
// node where the Python pre-hooks would summarise, so that the gradients kept are summarised and
// let go on long calls, at the same moments. `detach()` takes the hooks off the nodes again.
//
// The hooks return their gradients unchanged. Holding them (until `take`) makes `AccumulateGrad`
// copy a leaf's gradient into `.grad` rather than adopt the very tensor, as the Python hooks do.
//
// `cpu_stats(tensors)` gives each tensor's (float64 sum, min, max, float64 norm) without a Python
// call and four wrapped results per reduction: where the CPU has AVX2, in one pass over its memory
// (`fused_stats`); elsewhere with the very ATen calls of `summary._cpu_stats`. `summaries` does it
// for a batch of `summary.summarize_many`, `summary_one` for one `summary.summarize`.
#include <ATen/ATen.h>
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/node.h>
#include <torch/csrc/autograd/python_cpp_function.h>
#include <torch/csrc/autograd/python_function.h>
#include <torch/csrc/autograd/python_variable.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

namespace py = pybind11;
using torch::autograd::FunctionPreHook;
using torch::autograd::Node;
using torch::autograd::variable_list;

namespace {

// What the hooks of one backward call keep. The engine may run hooks on several threads at once
// (one per device), so everything is guarded by `lock`.
struct Store {
  std::mutex lock;
  std::vector<std::pair<int64_t, variable_list>> kept;  // (node, its gradients), in run order
  bool live = true;
  std::vector<char> leaf;  // per node: a leaf, whose gradients wait for the end of the call
  size_t batch = 0;        // call `on_batch` once this many op nodes' are kept (0: never)
  size_t ops = 0;          // op nodes' gradients kept since the last call of `on_batch`
  py::object on_batch;  // called with the GIL held, outside `lock`
};

struct GradPre final : FunctionPreHook {
  std::shared_ptr<Store> store;
  int64_t slot;
  GradPre(std::shared_ptr<Store> s, int64_t i) : store(std::move(s)), slot(i) {}

  variable_list operator()(const variable_list& grads) override {
    bool full = false;
    {
      std::lock_guard<std::mutex> guard(store->lock);
      if (!store->live) return grads;
      store->kept.emplace_back(slot, grads);
      // at the very op node where the Python pre-hooks summarise (`_pre_hook`): the same
      // gradients are read before their nodes run, the others after
      if (!store->leaf[slot] && ++store->ops == store->batch) {
        store->ops = 0;
        full = true;
      }
    }
    if (full) {
      py::gil_scoped_acquire gil;
      if (!store->on_batch || store->on_batch.is_none()) return grads;  // detached meanwhile
      try {
        store->on_batch();
      } catch (py::error_already_set& e) {
        e.discard_as_unraisable(__func__);  // never into the user's backward call
      }
    }
    return grads;
  }
};

c10::intrusive_ptr<Node> as_node(PyObject* obj) {
  if (torch::autograd::THPCppFunction_Check(obj))
    return ((torch::autograd::THPCppFunction*)obj)->cdata;
  if (THPFunction_Check(obj)) return ((THPFunction*)obj)->cdata;
  return c10::intrusive_ptr<Node>();
}

py::object wrap(const at::Tensor& t) {
  if (!t.defined()) return py::none();
  return py::reinterpret_steal<py::object>(THPVariable_Wrap(t));
}

class Hooks {
 public:
  Hooks(const py::list& nodes, const std::vector<int64_t>& leaves, size_t batch,
        py::object on_batch)
      : store_(std::make_shared<Store>()) {
    store_->batch = batch;
    store_->leaf.assign(nodes.size(), 0);
    for (int64_t i : leaves) {
      if (i < 0 || static_cast<size_t>(i) >= nodes.size()) throw py::index_error("leaf index");
      store_->leaf[i] = 1;
    }
    store_->on_batch = std::move(on_batch);
    nodes_.reserve(nodes.size());
    for (auto obj : nodes) {  // every node first: a bad one leaves no hook behind
      auto node = as_node(obj.ptr());
      if (!node) throw py::type_error("Hooks() takes autograd nodes");
      nodes_.push_back(std::move(node));
    }
    int64_t i = 0;
    for (auto& node : nodes_) node->add_pre_hook(std::make_unique<GradPre>(store_, i++));
  }

  ~Hooks() {
    try {
      detach();
    } catch (...) {
    }
  }

  // The (node, gradients) pairs kept since the last `take`, in the order the nodes ran.
  py::tuple take() {
    std::vector<std::pair<int64_t, variable_list>> kept;
    {
      std::lock_guard<std::mutex> guard(store_->lock);
      kept.swap(store_->kept);
    }
    py::list order(kept.size());
    py::list grads(kept.size());
    for (size_t k = 0; k < kept.size(); ++k) {
      const variable_list& g = kept[k].second;
      py::tuple t(g.size());
      for (size_t j = 0; j < g.size(); ++j) t[j] = wrap(g[j]);
      order[k] = py::int_(kept[k].first);
      grads[k] = std::move(t);
    }
    return py::make_tuple(order, grads);
  }

  // Take the hooks off the nodes (safe to call twice); what was not taken is dropped.
  void detach() {
    {
      std::lock_guard<std::mutex> guard(store_->lock);
      store_->live = false;
      store_->kept.clear();
    }
    for (auto& node : nodes_) {
      auto& hooks = node->pre_hooks();
      for (auto it = hooks.begin(); it != hooks.end();) {
        auto* mine = dynamic_cast<GradPre*>(it->get());
        if (mine && mine->store == store_)
          it = hooks.erase(it);
        else
          ++it;
      }
    }
    nodes_.clear();
    if (store_->on_batch) {
      py::gil_scoped_acquire gil;
      store_->on_batch = py::object();
    }
  }

 private:
  std::shared_ptr<Store> store_;
  std::vector<c10::intrusive_ptr<Node>> nodes_;
};

// How many of gradviz's pre-hooks `obj` (an autograd node) carries: for the tests.
size_t hooks_on(const py::handle& obj) {
  auto node = as_node(obj.ptr());
  if (!node) throw py::type_error("hooks_on() takes an autograd node");
  size_t n = 0;
  for (const auto& hook : node->pre_hooks()) n += dynamic_cast<GradPre*>(hook.get()) != nullptr;
  return n;
}

using Stats = std::tuple<double, double, double, double>;
Stats stats_of(const at::Tensor& t);

// One pass over contiguous float32/float64 memory for all four numbers (`fused_stats`), where the
// CPU has AVX2: three ATen reductions read the memory three times and cost a few microseconds of
// dispatch each; this is 3-6 times faster (benchmarks/native_stats.py). Blocks of `kBlock`
// elements are summed in 8 float64 lanes, and the blocks' partial sums are added in order, so the
// numbers do not depend on the number of threads that read the blocks. They are not ATen's bit for
// bit (its sums are vectorised differently, and differ themselves between CPUs): sum and norm
// agree to ~1e-15 relative; min and max are exact. A NaN or an Inf makes the sum non-finite, as
// ATen's does, and the caller takes its own path for those.
constexpr int64_t kBlock = 4096;
struct Part {
  double total, sq, lo, hi;
};
typedef double v4d __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)  // GCC vector code
#define GRADVIZ_FUSED 1
// Compiled for AVX2 (called only where the CPU has it); a lambda would not inherit the target.
template <typename T>
__attribute__((target("avx2,fma"))) Part block_of(const T* p, int64_t n) {
  v4d a0 = {0, 0, 0, 0}, a1 = a0, q0 = a0, q1 = a0;
  v4d lo = {INFINITY, INFINITY, INFINITY, INFINITY}, hi = -lo;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v4d x0 = {(double)p[i], (double)p[i + 1], (double)p[i + 2], (double)p[i + 3]};
    v4d x1 = {(double)p[i + 4], (double)p[i + 5], (double)p[i + 6], (double)p[i + 7]};
    a0 += x0;
    a1 += x1;
    q0 += x0 * x0;
    q1 += x1 * x1;
    lo = x0 < lo ? x0 : lo;
    hi = x0 > hi ? x0 : hi;
    lo = x1 < lo ? x1 : lo;
    hi = x1 > hi ? x1 : hi;
  }
  const v4d a = a0 + a1, q = q0 + q1;
  Part part{(a[0] + a[1]) + (a[2] + a[3]), (q[0] + q[1]) + (q[2] + q[3]), INFINITY, -INFINITY};
  for (int k = 0; k < 4; ++k) {
    part.lo = lo[k] < part.lo ? lo[k] : part.lo;
    part.hi = hi[k] > part.hi ? hi[k] : part.hi;
  }
  for (; i < n; ++i) {
    const double x = p[i];
    part.total += x;
    part.sq += x * x;
    part.lo = x < part.lo ? x : part.lo;
    part.hi = x > part.hi ? x : part.hi;
  }
  return part;
}

// The numbers of a tensor that is not dense (a strided slice, an `expand`), in its logical order,
// without a copy of it: each block is gathered into a buffer of `kBlock` numbers, so the blocks are
// those of a contiguous copy and so are the bits, and an expanded tensor costs no memory.
template <typename T>
struct Strided {
  const T* base;
  std::vector<int64_t> sizes, strides;

  void gather(int64_t start, int64_t count, T* out) const {
    const int64_t nd = static_cast<int64_t>(sizes.size());
    if (nd == 0) {
      out[0] = base[0];
      return;
    }
    std::vector<int64_t> idx(nd);
    int64_t rest = start, off = 0;
    for (int64_t d = nd - 1; d >= 0; --d) {
      idx[d] = rest % sizes[d];
      rest /= sizes[d];
      off += idx[d] * strides[d];
    }
    const int64_t last = nd - 1, inner = sizes[last], step = strides[last];
    for (int64_t k = 0; k < count;) {
      const int64_t run = std::min(inner - idx[last], count - k);
      const T* p = base + off;
      if (step == 1)
        std::copy(p, p + run, out + k);
      else
        for (int64_t r = 0; r < run; ++r) out[k + r] = p[r * step];
      k += run;
      off += run * step;
      idx[last] += run;
      for (int64_t d = last; d > 0 && idx[d] == sizes[d]; --d) {  // carry to the next dimension
        off += strides[d - 1] - sizes[d] * strides[d];
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  }
};

// The blocks' parts added in order (the same bits at any number of threads).
template <typename Block>
Part over_blocks(int64_t n, const Block& one) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks == 1) return one(0, n);
  std::vector<Part> parts(blocks);
  at::parallel_for(0, blocks, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) parts[b] = one(b * kBlock, std::min(kBlock, n - b * kBlock));
  });
  Part all = parts[0];
  for (int64_t b = 1; b < blocks; ++b) {
    all.total += parts[b].total;
    all.sq += parts[b].sq;
    all.lo = parts[b].lo < all.lo ? parts[b].lo : all.lo;
    all.hi = parts[b].hi > all.hi ? parts[b].hi : all.hi;
  }
  return all;
}

template <typename T>
Part dense_blocks(const T* p, int64_t n) {
  return over_blocks(n, [p](int64_t start, int64_t count) { return block_of(p + start, count); });
}

template <typename T>
Part strided_blocks(const at::Tensor& t) {
  Strided<T> walk{t.const_data_ptr<T>(), t.sizes().vec(), t.strides().vec()};
  return over_blocks(t.numel(), [&walk](int64_t start, int64_t count) {
    thread_local std::vector<T> buffer;
    buffer.resize(kBlock);
    walk.gather(start, count, buffer.data());
    return block_of(buffer.data(), count);
  });
}

// Asked while the library loads: `__builtin_cpu_init` first, since libgcc's own initialiser of
// the CPU model may not have run yet then (GCC's manual).
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
const bool kFused = cpu_has_avx2();
#else
const bool kFused = false;
#endif
// Whether the one-pass statistics are used (`use_fused`: `GRADVIZ_FUSED=0` turns them off).
std::atomic<bool> fused_on{kFused};

// Whether every number of strided `t` lies in its memory: not a storage freed or shrunk under it
// (FSDP frees a gathered parameter's), which a reduction would read and crash the process.
bool covered(const at::Tensor& t) {
  if (!t.has_storage() || !t.const_data_ptr()) return false;
  int64_t last = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) return false;
    last += (t.size(d) - 1) * t.stride(d);
  }
  return (last + 1) * static_cast<int64_t>(t.element_size()) <=
         static_cast<int64_t>(t.storage().nbytes());
}

// Whether `fused_stats` reads `t`: float32/float64 CPU memory (a lazily negated view of it too:
// its numbers are the memory's negated exactly), not an all-zero tensor without memory.
bool fusable(const at::Tensor& t) {
  if (!fused_on.load(std::memory_order_relaxed)) return false;
  if (!t.defined() || t.layout() != at::kStrided || !t.device().is_cpu()) return false;
  const auto dtype = t.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) return false;
  return !t._is_zerotensor() && t.numel() > 0 && covered(t);
}

// The numbers of a `fusable` tensor. Memory that holds exactly its numbers (contiguous, or a
// permutation of that: a transpose) is read in memory order, so a tensor and its transpose get the
// same bits; any other layout (a strided slice, an expanded tensor) is read in logical order, block
// by block (`Strided`), with the bits of a contiguous copy. min and max mean something only where
// the sum is finite (a NaN is skipped there).
Stats fused_stats(const at::Tensor& t) {
  Part all{0, 0, 0, 0};
#ifdef GRADVIZ_FUSED
  const bool f64 = t.scalar_type() == at::kDouble;
  if (t.is_non_overlapping_and_dense())  // its lowest address is its data pointer
    all = f64 ? dense_blocks(t.const_data_ptr<double>(), t.numel())
              : dense_blocks(t.const_data_ptr<float>(), t.numel());
  else
    all = f64 ? strided_blocks<double>(t) : strided_blocks<float>(t);
#endif
  if (t.is_neg()) return Stats(-all.total, -all.hi, -all.lo, std::sqrt(all.sq));
  return Stats(all.total, all.lo, all.hi, std::sqrt(all.sq));
}

// (float64 sum, min, max, float64 norm) of each float32/float64 CPU tensor: `summary._cpu_stats`
// (`float(d.sum())`, `torch.aminmax(t)`, `torch.linalg.vector_norm(d)` with `d = t.double()`).
std::vector<Stats> cpu_stats(const std::vector<at::Tensor>& tensors) {
  std::vector<Stats> found;
  found.reserve(tensors.size());
  py::gil_scoped_release nogil;  // as torch's own ops, which let other threads run meanwhile
  at::NoGradGuard no_grad;
  for (const auto& t : tensors) found.push_back(stats_of(t));
  return found;
}

// The float64 numbers of `t`, as `cpu_stats` reads them (autograd off, the GIL released).
Stats stats_of(const at::Tensor& t) {
  if (fusable(t)) return fused_stats(t);
  if (t.layout() == at::kStrided && t.device().is_cpu() && t.numel() > 0 &&
      !t._is_zerotensor() && !covered(t)) {
    const double nan = std::nan("");
    return Stats(nan, nan, nan, nan);  // not finite: the caller's Python path says what it is
  }
  const at::Tensor d = t.scalar_type() == at::kDouble ? t : t.to(at::kDouble);
  auto extremes = at::aminmax(t);
  return Stats(d.sum().item<double>(), std::get<0>(extremes).item<double>(),
               std::get<1>(extremes).item<double>(), at::linalg_vector_norm(d, 2).item<double>());
}

// Whether `obj` is a tensor `summaries` reads: a plain `torch.Tensor` or `nn.Parameter` (a
// subclass decides what reading it means), strided, float32/float64 on the CPU, with more than
// `limit` and fewer than `most` elements and memory behind them (FSDP frees a gathered
// parameter's: `summary.freed`).
bool readable_large(PyObject* obj, int64_t limit, int64_t most) {
  PyTypeObject* type = Py_TYPE(obj);
  if (type != (PyTypeObject*)THPVariableClass && type != (PyTypeObject*)ParameterClass)
    return false;
  const at::Tensor& t = THPVariable_Unpack(obj);
  if (!t.defined() || t.layout() != at::kStrided || !t.device().is_cpu()) return false;
  if (t.is_neg() || t.is_conj()) return false;  // a lazy view: its memory is not its numbers
  const auto dtype = t.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) return false;
  const int64_t n = t.numel();
  if (n <= limit || n >= most || !t.has_storage()) return false;
  return t.storage().nbytes() > 0;
}

// `make(shape, dtype, numel, None, min, max, mean, norm)`: the `TensorSummary` of float32/float64
// tensor `t` with these numbers; None if they are not finite (Python's masked statistics then).
py::object summary_of(const at::Tensor& t, const Stats& numbers, const py::object& make) {
  const auto& [total, lo, hi, norm] = numbers;
  if (!std::isfinite(total)) return py::none();
  py::tuple shape(t.dim());
  for (int64_t d = 0; d < t.dim(); ++d) shape[d] = py::int_(t.size(d));
  const int64_t numel = t.numel();
  return make(shape, py::str(t.scalar_type() == at::kDouble ? "float64" : "float32"), numel,
              py::none(), lo, hi, total / static_cast<double>(numel), norm);
}

// `summary.summarize_many`'s large CPU tensors in one call: for each item that `readable_large`
// accepts and whose numbers are all finite, `make(shape, dtype, numel, None, min, max, mean,
// norm)` (a `TensorSummary`, with the numbers of `_large_many` bit for bit); None for the rest,
// which Python summarises (a NaN or an Inf takes `_masked`). The same memory read twice (the
// same tensor, or a contiguous view of it: a full reduction of contiguous memory does not depend
// on the shape) is reduced once, as `_repeats` does.
py::list summaries(const py::list& items, int64_t limit, int64_t most, const py::object& make) {
  const size_t n = items.size();
  std::vector<at::Tensor> tensors(n);
  std::vector<int64_t> source(n, -1);  // the item whose numbers item k takes (-1: none)
  std::vector<size_t> todo;
  std::map<std::tuple<const void*, int64_t, int>, size_t> first;
  for (size_t k = 0; k < n; ++k) {
    PyObject* obj = items[k].ptr();
    if (!readable_large(obj, limit, most)) continue;
    const at::Tensor& t = THPVariable_Unpack(obj);
    tensors[k] = t;
    source[k] = static_cast<int64_t>(k);
    if (t.is_contiguous()) {
      auto key = std::make_tuple(t.const_data_ptr(), t.numel(), static_cast<int>(t.scalar_type()));
      auto found = first.emplace(key, k);
      if (!found.second) {
        source[k] = static_cast<int64_t>(found.first->second);
        continue;
      }
    }
    todo.push_back(k);
  }
  std::vector<Stats> numbers(n);
  {
    py::gil_scoped_release nogil;
    at::NoGradGuard no_grad;
    for (size_t k : todo) numbers[k] = stats_of(tensors[k]);
  }
  py::list out(n);
  for (size_t k = 0; k < n; ++k)
    out[k] = source[k] < 0 ? py::none() : summary_of(tensors[k], numbers[source[k]], make);
  return out;
}

// `summary.summarize(t)` of one tensor that `readable_large` accepts and whose numbers are all
// finite: `make(shape, dtype, numel, None, min, max, mean, norm)`, as `summaries` makes it; None
// for anything else (Python's path says what it is). What the Python path costs around the
// reductions (its checks, the calls down to `cpu_stats`) is about 15 us a tensor; this is 1.
py::object summary_one(const py::handle& obj, int64_t limit, int64_t most, const py::object& make) {
  PyObject* ptr = obj.ptr();
  if (!readable_large(ptr, limit, most)) return py::none();
  const at::Tensor& t = THPVariable_Unpack(ptr);
  Stats numbers;
  try {
    py::gil_scoped_release nogil;
    at::NoGradGuard no_grad;
    numbers = stats_of(t);
  } catch (const std::exception&) {
    return py::none();  // an odd tensor: the Python path reads it under its own `try`
  }
  return summary_of(t, numbers, make);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gradviz's C++ gradient pre-hooks and statistics (graphviz_grad.capture.native)";
  m.def("hooks_on", &hooks_on);
  m.attr("fused") = kFused;  // whether this CPU can (AVX2)
  m.def("use_fused", [](bool on) {
    fused_on = on && kFused;
    return fused_on.load();
  });
  m.def("cpu_stats", &cpu_stats, py::arg("tensors"));
  m.def("summary_one", &summary_one, py::arg("tensor"), py::arg("limit"), py::arg("most"),
        py::arg("make"));
  m.def("summaries", &summaries, py::arg("items"), py::arg("limit"), py::arg("most"),
        py::arg("make"));
  py::class_<Hooks>(m, "Hooks")
      .def(py::init<const py::list&, const std::vector<int64_t>&, size_t, py::object>(),
           py::arg("nodes"), py::arg("leaves"), py::arg("batch") = 0,
           py::arg("on_batch") = py::none())
      .def("take", &Hooks::take)
      .def("detach", &Hooks::detach);
}
