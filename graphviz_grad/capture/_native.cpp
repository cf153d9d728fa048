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
//
// `json_rows` writes the rows of `render.json.write_json` (nodes, edges), byte for byte Python's.
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
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
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
  size_t batch_bytes = 0;  // or once their gradients take this many bytes (0: never)
  size_t ops = 0;          // op nodes' gradients kept since the last call of `on_batch`
  size_t bytes = 0;        // and their bytes (as `_snapshot._nbytes` counts them)
  py::object on_batch;  // called with the GIL held, outside `lock`
};

size_t nbytes(const variable_list& grads) {
  size_t total = 0;
  for (const auto& g : grads) {
    if (!g.defined()) continue;
    try {
      total += static_cast<size_t>(g.numel()) * g.element_size();
    } catch (...) {  // a tensor whose size is not known here counts for nothing
    }
  }
  return total;
}

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
      if (!store->leaf[slot]) {
        store->bytes += nbytes(grads);
        if (++store->ops == store->batch ||
            (store->batch_bytes != 0 && store->bytes >= store->batch_bytes)) {
          store->ops = 0;
          store->bytes = 0;
          full = true;
        }
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
        size_t batch_bytes, py::object on_batch)
      : store_(std::make_shared<Store>()) {
    store_->batch = batch;
    store_->batch_bytes = batch_bytes;
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

py::object summary_of(const at::Tensor& t, const Stats& numbers, const py::object& make);

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

// ---- a few numbers: `summary.summarize_small` -----------------------------------------------

// `math.fsum(values)` (CPython's `math_fsum`: Shewchuk's partials, then the sum rounded half-even
// across them) for finite values; false where an intermediate sum overflows (`fsum` raises).
bool exact_sum(const std::vector<double>& values, double& out) {
  double partials[64];  // at most 32 partials can be nonzero for doubles: 64 is plenty
  int n = 0;
  for (double x : values) {
    int i = 0;
    for (int j = 0; j < n; ++j) {
      double y = partials[j];
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y;
      const double lo = y - (hi - x);
      if (lo != 0.0) partials[i++] = lo;
      x = hi;
    }
    n = i;
    if (x != 0.0) {
      if (!std::isfinite(x)) return false;
      if (n >= 64) return false;
      partials[n++] = x;
    }
  }
  double hi = 0.0;
  if (n > 0) {
    double lo = 0.0;
    hi = partials[--n];
    while (n > 0) {
      const double x = hi;
      const double y = partials[--n];
      hi = x + y;
      lo = y - (hi - x);
      if (lo != 0.0) break;
    }
    if (n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0))) {
      const double y = lo * 2.0;
      const double x = hi + y;
      if (y == x - hi) hi = x;
    }
  }
  out = hi;
  return true;
}

// How `TensorSummary` objects are made here: by filling the slots of the class (`make`) directly,
// which is what its `__init__` (`model._fast_init`) does, without the Python call. Only when its
// slots are exactly these, in this order; otherwise `make(...)` is called.
const char* const kSummarySlots[] = {"shape", "dtype", "numel", "data", "min", "max",
                                     "mean",  "norm",  "nan",   "inf",  "note"};
constexpr int kSummaryFields = 11;
struct SummaryMaker {
  PyObject* type = nullptr;  // the class these descriptors are of (borrowed: the class lives on)
  bool direct = false;
  PyObject* slot[kSummaryFields] = {};
};
SummaryMaker summary_maker;

void learn_maker(PyObject* type) {
  summary_maker = SummaryMaker{};
  summary_maker.type = type;
  if (!PyType_Check(type)) return;
  py::object slots = py::reinterpret_borrow<py::object>(type).attr("__dict__").attr("get")("__slots__");
  if (!py::isinstance<py::tuple>(slots) || py::len(slots) != kSummaryFields) return;
  PyObject* dict = ((PyTypeObject*)type)->tp_dict;
  for (int k = 0; k < kSummaryFields; ++k) {
    if (py::str(py::tuple(slots)[k]).cast<std::string>() != kSummarySlots[k]) return;
    PyObject* descr = PyDict_GetItemString(dict, kSummarySlots[k]);  // borrowed
    if (descr == nullptr || Py_TYPE(descr)->tp_descr_set == nullptr) return;
    summary_maker.slot[k] = descr;
  }
  summary_maker.direct = true;
}

// `make(shape, dtype, numel, data, lo, hi, mean, norm)`, with nan = inf = 0 and note = None.
py::object new_summary(const py::object& make, py::object shape, py::object dtype,
                       py::object numel, py::object data, py::object lo, py::object hi,
                       py::object mean, py::object norm) {
  if (summary_maker.type != make.ptr()) learn_maker(make.ptr());
  if (!summary_maker.direct) return make(shape, dtype, numel, data, lo, hi, mean, norm);
  // never released: a static py::object would be let go after the interpreter is gone
  static PyObject* const zero = PyLong_FromLong(0);
  PyObject* fields[kSummaryFields] = {shape.ptr(), dtype.ptr(), numel.ptr(), data.ptr(),
                                      lo.ptr(),    hi.ptr(),    mean.ptr(),  norm.ptr(),
                                      zero,        zero,        Py_None};
  PyTypeObject* type = (PyTypeObject*)make.ptr();
  py::object made = py::reinterpret_steal<py::object>(type->tp_alloc(type, 0));
  if (!made) throw py::error_already_set();
  for (int k = 0; k < kSummaryFields; ++k) {
    PyObject* descr = summary_maker.slot[k];
    if (Py_TYPE(descr)->tp_descr_set(descr, made.ptr(), fields[k]) < 0)
      throw py::error_already_set();
  }
  return made;
}

py::str interned_dtype(bool f64) {
  static PyObject* names[2] = {PyUnicode_InternFromString("float32"),
                               PyUnicode_InternFromString("float64")};
  return py::reinterpret_borrow<py::str>(names[f64 ? 1 : 0]);
}

py::tuple shape_of(const at::Tensor& t) {
  py::tuple shape(t.dim());
  for (int64_t d = 0; d < t.dim(); ++d) shape[d] = py::int_(t.size(d));
  return shape;
}

// `make(shape, dtype, numel, None, min, max, mean, norm)`: the `TensorSummary` of float32/float64
// tensor `t` with these numbers; None if they are not finite (Python's masked statistics then).
py::object summary_of(const at::Tensor& t, const Stats& numbers, const py::object& make) {
  const auto& [total, lo, hi, norm] = numbers;
  if (!std::isfinite(total)) return py::none();
  const int64_t numel = t.numel();
  return new_summary(make, shape_of(t), interned_dtype(t.scalar_type() == at::kDouble),
                     py::int_(numel), py::none(), py::float_(lo), py::float_(hi),
                     py::float_(total / static_cast<double>(numel)), py::float_(norm));
}

// `summary.summarize_small(t)` of a plain strided float32/float64 CPU tensor of 1 to `limit`
// numbers in at most two dimensions, every number (and every square) finite: the same
// `TensorSummary`, data as `t.tolist()` gives it, statistics as `summary._small` computes them
// (min and max as Python's `min`/`max` pick them, mean and norm from `math.fsum`). None for
// anything else, which Python's path summarises (a NaN, an Inf, a sum past the float range).
py::object small_one(const py::handle& obj, int64_t limit, const py::object& make) {
  PyObject* ptr = obj.ptr();
  PyTypeObject* type = Py_TYPE(ptr);
  if (type != (PyTypeObject*)THPVariableClass && type != (PyTypeObject*)ParameterClass)
    return py::none();
  const at::Tensor& t = THPVariable_Unpack(ptr);
  if (!t.defined() || t.layout() != at::kStrided || !t.device().is_cpu()) return py::none();
  if (t.is_neg() || t.is_conj() || t._is_zerotensor()) return py::none();
  const auto dtype = t.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) return py::none();
  const int64_t dim = t.dim(), n = t.numel();
  if (dim > 2 || n < 1 || n > limit || !t.has_storage()) return py::none();
  // the memory the numbers take must be there (FSDP frees a gathered parameter's: `freed`)
  int64_t last = t.storage_offset();
  for (int64_t d = 0; d < dim; ++d) {
    if (t.stride(d) < 0) return py::none();
    last += (t.size(d) - 1) * t.stride(d);
  }
  if ((last + 1) * static_cast<int64_t>(t.element_size()) >
      static_cast<int64_t>(t.storage().nbytes()))
    return py::none();
  const bool f64 = dtype == at::kDouble;
  const int64_t rows = dim == 2 ? t.size(0) : 1, cols = dim == 0 ? 1 : t.size(dim - 1);
  const int64_t row_step = dim == 2 ? t.stride(0) : 0, col_step = dim == 0 ? 0 : t.stride(dim - 1);
  std::vector<double> flat;
  flat.reserve(n);
  const char* base = static_cast<const char*>(t.storage().data()) +
                     t.storage_offset() * static_cast<int64_t>(t.element_size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t at = r * row_step + c * col_step;
      const double v = f64 ? reinterpret_cast<const double*>(base)[at]
                           : static_cast<double>(reinterpret_cast<const float*>(base)[at]);
      if (!std::isfinite(v)) return py::none();
      flat.push_back(v);
    }
  if (dim == 0) {  // `_small`'s one number: min = max = mean = the number, norm sqrt(v * v)
    const double v = flat[0];
    py::float_ data(v);
    return new_summary(make, shape_of(t), interned_dtype(f64), py::int_(n), data, data, data,
                       data, py::float_(std::sqrt(v * v)));
  }
  std::vector<double> sq(flat.size());
  for (size_t k = 0; k < flat.size(); ++k) {
    sq[k] = flat[k] * flat[k];
    if (!std::isfinite(sq[k])) return py::none();
  }
  double total = 0.0, squares = 0.0;
  if (!exact_sum(flat, total) || !exact_sum(sq, squares)) return py::none();
  // the data as `tolist()` nests it; min and max the first of the smallest and largest, as
  // Python's `min` and `max` of the flat list give them (the same float objects)
  py::list data(dim == 2 ? rows : cols);
  py::object lo, hi;
  double lo_v = 0.0, hi_v = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    py::list row = dim == 2 ? py::list(cols) : data;
    for (int64_t c = 0; c < cols; ++c) {
      const double v = flat[r * cols + c];
      py::float_ item(v);
      row[c] = item;
      if (!lo || v < lo_v) lo = item, lo_v = v;
      if (!hi || v > hi_v) hi = item, hi_v = v;
    }
    if (dim == 2) data[r] = row;
  }
  return new_summary(make, shape_of(t), interned_dtype(f64), py::int_(n), data, lo, hi,
                     py::float_(total / static_cast<double>(n)), py::float_(std::sqrt(squares)));
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


// ---- JSON rows (`render.json.write_json`) -----------------------------------------------------
//
// `json_rows(items, kind, sep, fallback)` is `sep.join(map(row, items))` where `row` is
// `render.json._node_json` (kind 0), `_edge_json` (1), `_input_edge_json` (2) or `_input_json`
// (3), byte
// for byte: Python's float repr (`PyOS_double_to_string`, 'r'), its JSON string escapes, the same
// keys in the same order. A row holding a value of a type those functions are not written for
// here (a float where an int goes, a tuple in `data`, a string that is not UTF-8) is
// `fallback(item)`, Python's own row. A 100,000-node chain's rows take ~2 s in Python.
namespace json_rows_impl {

struct Unwritable {};  // a value this writer does not know: the row is Python's

PyObject* k_names[32];
enum Key {
  kId, kKind, kOp, kNames, kShape, kDtype, kValue, kGrad, kOutputs, kSaved, kModule, kModuleType,
  kFile, kLine, kOrder, kAten, kConstants, kCheckpointed, kHooked, kSyncedGrad, kData, kMin,
  kMax, kMean, kNorm, kNan, kInf, kNote, kName, kSummary, kNode, kText
};
PyObject* k_state;
PyObject* k_src;
PyObject* k_dst;
PyObject* k_index;
PyObject* k_output_nr;

void intern_keys() {
  static const char* names[] = {
      "id", "kind", "op", "names", "shape", "dtype", "value", "grad", "outputs", "saved",
      "module", "module_type", "file", "line", "order", "aten", "constants", "checkpointed",
      "hooked", "synced_grad", "data", "min", "max", "mean", "norm", "nan", "inf", "note",
      "name", "summary", "node", "text"};
  for (int k = 0; k < 32; ++k) k_names[k] = PyUnicode_InternFromString(names[k]);
  k_state = PyUnicode_InternFromString("state");
  k_src = PyUnicode_InternFromString("src");
  k_dst = PyUnicode_InternFromString("dst");
  k_index = PyUnicode_InternFromString("index");
  k_output_nr = PyUnicode_InternFromString("output_nr");
}

py::object get(PyObject* obj, PyObject* name) {
  PyObject* found = PyObject_GetAttr(obj, name);
  if (found == nullptr) {
    PyErr_Clear();
    throw Unwritable{};
  }
  return py::reinterpret_steal<py::object>(found);
}

py::object get(PyObject* obj, Key key) { return get(obj, k_names[key]); }

void put_int(std::string& s, PyObject* x) {  // `_int`
  if (x == Py_None) {
    s += "null";
  } else if (x == Py_True) {
    s += "true";
  } else if (x == Py_False) {
    s += "false";
  } else if (PyLong_CheckExact(x)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      throw Unwritable{};
    }
    s += std::to_string(v);
  } else {
    throw Unwritable{};
  }
}

// `float.__repr__` of a finite `x`: its shortest round-trip digits (`std::to_chars`, as
// Python's `dtoa` picks them), laid out as Python does: an exponent below 1e-4 and from 1e16 on
// ("1e-05", "1e+16"), else fixed with at least one digit after the point ("0.0001", "3.0").
void put_repr(std::string& s, double x) {
  char buf[48];
  auto done = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  *done.ptr = '\0';
  const char* p = buf;
  if (*p == '-') {
    s += '-';
    ++p;
  }
  char digits[24];
  int nd = 0;
  for (; *p != 'e'; ++p) {
    if (*p != '.') digits[nd++] = *p;
  }
  int exp10 = std::atoi(p + 1);
  int decpt = exp10 + 1;  // the point sits after this many digits
  if (decpt <= -4 || decpt > 16) {
    s += digits[0];
    if (nd > 1) {
      s += '.';
      s.append(digits + 1, nd - 1);
    }
    s += exp10 < 0 ? "e-" : "e+";
    int size = std::abs(exp10);
    if (size < 10) s += '0';
    s += std::to_string(size);
  } else if (decpt <= 0) {
    s += "0.";
    s.append(-decpt, '0');
    s.append(digits, nd);
  } else if (decpt >= nd) {
    s.append(digits, nd);
    s.append(decpt - nd, '0');
    s += ".0";
  } else {
    s.append(digits, decpt);
    s += '.';
    s.append(digits + decpt, nd - decpt);
  }
}

void put_float(std::string& s, double x) {  // `float.__repr__`, or `_encode_number`'s string
  if (std::isnan(x)) {
    s += "\"nan\"";
  } else if (std::isinf(x)) {
    s += x > 0 ? "\"inf\"" : "\"-inf\"";
  } else {
    put_repr(s, x);
  }
}

void put_num(std::string& s, PyObject* x) {  // `_num`
  if (PyFloat_Check(x)) {
    put_float(s, PyFloat_AS_DOUBLE(x));
  } else {
    put_int(s, x);
  }
}

void put_str(std::string& s, PyObject* x) {  // `_str`: `json.encoder.encode_basestring`
  if (x == Py_None) {
    s += "null";
    return;
  }
  if (!PyUnicode_Check(x)) throw Unwritable{};
  Py_ssize_t n = 0;
  const char* text = PyUnicode_AsUTF8AndSize(x, &n);
  if (text == nullptr) {  // a lone surrogate
    PyErr_Clear();
    throw Unwritable{};
  }
  static const char hex[] = "0123456789abcdef";
  s += '"';
  for (Py_ssize_t k = 0; k < n; ++k) {
    unsigned char c = static_cast<unsigned char>(text[k]);
    switch (c) {
      case '"': s += "\\\""; break;
      case '\\': s += "\\\\"; break;
      case '\b': s += "\\b"; break;
      case '\f': s += "\\f"; break;
      case '\n': s += "\\n"; break;
      case '\r': s += "\\r"; break;
      case '\t': s += "\\t"; break;
      default:
        if (c < 0x20) {
          s += "\\u00";
          s += hex[c >> 4];
          s += hex[c & 15];
        } else {
          s += static_cast<char>(c);
        }
    }
  }
  s += '"';
}

void put_dims(std::string& s, PyObject* shape) {  // `_dims`
  if (shape == Py_None) {
    s += "null";
    return;
  }
  if (!PyTuple_Check(shape)) throw Unwritable{};
  s += '[';
  for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(shape); ++k) {
    if (k) s += ", ";
    put_int(s, PyTuple_GET_ITEM(shape, k));
  }
  s += ']';
}

void put_data(std::string& s, PyObject* data) {  // `_dumps(_map_data(data, _encode_number))`
  if (PyList_CheckExact(data)) {
    s += '[';
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(data); ++k) {
      if (k) s += ", ";
      put_data(s, PyList_GET_ITEM(data, k));
    }
    s += ']';
  } else if (PyUnicode_Check(data)) {
    put_str(s, data);
  } else {
    put_num(s, data);
  }
}

// `, "a": .., "b": ..` of attributes of `obj`, keyed by their names (interned ASCII strings,
// `intern_keys`), each written by its writer; from `{` instead of `, ` when `open`.
using Put = void (*)(std::string&, PyObject*);
using Fields = std::initializer_list<std::pair<PyObject*, Put>>;
void put_keys(std::string& s, PyObject* obj, Fields fields, bool open = false) {
  const char* sep = open ? "{\"" : ", \"";
  for (const auto& [name, put] : fields) {
    s += sep;
    s += PyUnicode_AsUTF8(name);
    s += "\": ";
    put(s, get(obj, name).ptr());
    sep = ", \"";
  }
}

void put_summary(std::string& s, PyObject* summary) {  // `_summary_json`
  if (summary == Py_None) {
    s += "null";
    return;
  }
  put_keys(s, summary, {{k_names[kShape], put_dims}, {k_names[kDtype], put_str}}, true);
  py::object data = get(summary, kData);
  if (data.ptr() != Py_None) {
    s += ", \"data\": ";
    put_data(s, data.ptr());
  }
  put_keys(s, summary,
           {{k_names[kMin], put_num}, {k_names[kMax], put_num}, {k_names[kMean], put_num},
            {k_names[kNorm], put_num}, {k_names[kNan], put_int}, {k_names[kInf], put_int}});
  py::object note = get(summary, kNote);
  if (note.ptr() != Py_None) {
    s += ", \"note\": ";
    put_str(s, note.ptr());
  }
  s += '}';
}

// `[each(x) for x in items]` of a tuple, as the encoder writes a list ("[a, b]").
template <typename Each>
void put_list(std::string& s, PyObject* items, const Each& each) {
  if (!PyTuple_Check(items)) throw Unwritable{};
  s += '[';
  for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(items); ++k) {
    if (k) s += ", ";
    each(PyTuple_GET_ITEM(items, k));
  }
  s += ']';
}

// `{"a": .., "b": ..}` of attributes of `obj`, keyed by their names, each by its writer.
void put_fields(std::string& s, PyObject* obj, Fields fields) {
  put_keys(s, obj, fields, true);
  s += '}';
}

// `_dumps(_saved_to_dict(saved))`
void put_saved(std::string& s, PyObject* saved) {
  put_fields(s, saved,
             {{k_names[kName], put_str}, {k_names[kKind], put_str},
              {k_names[kSummary], put_summary}, {k_names[kNode], put_int},
              {k_names[kText], put_str}, {k_state, put_str}});
}

// The text of the constants' summaries, by summary: a loop's steps pass the same numbers, which
// share one summary (`_forward._number`). Only within one `json_rows` call, which holds them.
thread_local std::unordered_map<PyObject*, std::string> shared_text;

void put_shared(std::string& s, PyObject* summary) {  // `_shared_json`
  auto found = shared_text.find(summary);
  if (found == shared_text.end()) {
    std::string text;
    put_summary(text, summary);
    if (shared_text.size() < 4096) shared_text.emplace(summary, text);
    s += text;
  } else {
    s += found->second;
  }
}

void put_node(std::string& s, PyObject* n) {  // `_node_json`
  py::object value = get(n, kValue), grad = get(n, kGrad), kind = get(n, kKind);
  std::string value_text, grad_text;
  put_summary(value_text, value.ptr());
  put_summary(grad_text, grad.ptr());
  int op = PyObject_RichCompareBool(kind.ptr(), k_names[kOp], Py_EQ);  // kind == "op"
  if (op < 0) {
    PyErr_Clear();
    throw Unwritable{};
  }
  s += "{\"id\": ";
  put_int(s, get(n, kId).ptr());
  s += ", \"kind\": ";
  put_str(s, kind.ptr());
  s += ", \"op\": ";
  put_str(s, op ? get(n, kOp).ptr() : Py_None);
  s += ", \"names\": ";
  put_list(s, get(n, kNames).ptr(), [&](PyObject* name) { put_str(s, name); });
  s += ", \"shape\": ";
  put_dims(s, get(n, kShape).ptr());
  s += ", \"dtype\": ";
  put_str(s, get(n, kDtype).ptr());
  s += ", \"value\": ";
  s += value_text;
  s += ", \"grad\": ";
  s += grad_text;
  if (op) {
    s += ", \"outputs\": ";
    put_list(s, get(n, kOutputs).ptr(), [&](PyObject* o) {
      // the node's own value and gradient, almost always: their text is written already
      auto put_same = [&](Key key, const py::object& own, const std::string& own_text) {
        py::object found = get(o, key);
        if (found.ptr() == own.ptr()) {
          s += own_text;
        } else {
          put_summary(s, found.ptr());
        }
      };
      s += "{\"value\": ";
      put_same(kValue, value, value_text);
      s += ", \"grad\": ";
      put_same(kGrad, grad, grad_text);
      s += '}';
    });
  }
  s += ", \"saved\": ";
  put_list(s, get(n, kSaved).ptr(), [&](PyObject* saved) { put_saved(s, saved); });
  for (auto [label, key] : {std::pair{", \"module\": ", kModule},
                            {", \"module_type\": ", kModuleType}, {", \"file\": ", kFile}}) {
    s += label;
    put_str(s, get(n, key).ptr());
  }
  for (auto [label, key] : {std::pair{", \"line\": ", kLine}, {", \"order\": ", kOrder}}) {
    s += label;
    put_int(s, get(n, key).ptr());
  }
  s += ", \"aten\": ";
  put_str(s, get(n, kAten).ptr());
  s += ", \"constants\": ";
  put_list(s, get(n, kConstants).ptr(), [&](PyObject* pair) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) throw Unwritable{};
    s += "{\"index\": ";
    put_int(s, PyTuple_GET_ITEM(pair, 0));
    s += ", \"value\": ";
    put_shared(s, PyTuple_GET_ITEM(pair, 1));
    s += '}';
  });
  for (Key key : {kCheckpointed, kHooked}) {
    int on = PyObject_IsTrue(get(n, key).ptr());
    if (on < 0) {
      PyErr_Clear();
      throw Unwritable{};
    }
    if (on) {
      s += key == kCheckpointed ? ", \"checkpointed\": true" : ", \"hooked\": true";
    }
  }
  py::object synced = get(n, kSyncedGrad);
  if (synced.ptr() != Py_None) {
    s += ", \"synced_grad\": ";
    put_summary(s, synced.ptr());
  }
  s += '}';
}

void put_edge(std::string& s, PyObject* e) {  // `_edge_json`
  put_fields(s, e,
             {{k_src, put_int}, {k_dst, put_int}, {k_index, put_int}, {k_output_nr, put_int},
              {k_names[kGrad], put_summary}});
}

void put_input_edge(std::string& s, PyObject* use) {  // `_input_edge_json` (an `InputUse`)
  if (!PyTuple_Check(use) || PyTuple_GET_SIZE(use) < 3) throw Unwritable{};
  s += "{\"src\": ";
  put_int(s, PyTuple_GET_ITEM(use, 0));
  s += ", \"dst\": ";
  put_int(s, PyTuple_GET_ITEM(use, 1));
  s += ", \"index\": ";
  put_int(s, PyTuple_GET_ITEM(use, 2));
  s += ", \"output_nr\": 0, \"grad\": null}";
}

void put_input_node(std::string& s, PyObject* use) {  // `_input_json` (an `InputUse`)
  if (!PyTuple_Check(use) || PyTuple_GET_SIZE(use) < 5) throw Unwritable{};
  PyObject* name = PyTuple_GET_ITEM(use, 3);
  PyObject* value = PyTuple_GET_ITEM(use, 4);
  s += "{\"id\": ";
  put_int(s, PyTuple_GET_ITEM(use, 0));
  s += ", \"kind\": \"input\", \"op\": null, \"names\": ";
  if (name == Py_None) {
    s += "[]";
  } else {
    s += '[';
    put_str(s, name);
    s += ']';
  }
  s += ", \"shape\": ";
  put_dims(s, get(value, kShape).ptr());
  s += ", \"dtype\": ";
  put_str(s, get(value, kDtype).ptr());
  s += ", \"value\": ";
  put_shared(s, value);
  s += ", \"grad\": null, \"saved\": [], \"module\": null, \"module_type\": null, "
       "\"file\": null, \"line\": null, \"order\": null, \"aten\": null, \"constants\": []}";
}

py::object decoded(const std::string& s) {
  PyObject* text = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
  if (text == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(text);
}

py::object json_rows(const py::sequence& items, int kind, const std::string& sep,
                     const py::object& fallback) {
  std::string s;
  py::list pieces;  // the text so far and Python's rows, where a row fell back to Python
  shared_text.clear();
  size_t n = py::len(items);
  for (size_t k = 0; k < n; ++k) {
    py::object item = items[k];
    if (k) s += sep;
    size_t mark = s.size();
    try {
      if (kind == 0) {
        put_node(s, item.ptr());
      } else if (kind == 1) {
        put_edge(s, item.ptr());
      } else if (kind == 2) {
        put_input_edge(s, item.ptr());
      } else {
        put_input_node(s, item.ptr());
      }
    } catch (const Unwritable&) {
      s.resize(mark);
      py::object row = fallback(item);  // a str, which may hold what UTF-8 cannot
      pieces.append(decoded(s));
      pieces.append(row);
      s.clear();
    }
  }
  shared_text.clear();
  if (pieces.empty()) return decoded(s);
  pieces.append(decoded(s));
  return py::str("").attr("join")(pieces);
}

}  // namespace json_rows_impl

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
  m.def("small_one", &small_one, py::arg("tensor"), py::arg("limit"), py::arg("make"));
  m.def("summaries", &summaries, py::arg("items"), py::arg("limit"), py::arg("most"),
        py::arg("make"));
  json_rows_impl::intern_keys();
  m.def("json_rows", &json_rows_impl::json_rows, py::arg("items"), py::arg("kind"),
        py::arg("sep"), py::arg("fallback"));
  py::class_<Hooks>(m, "Hooks")
      .def(py::init<const py::list&, const std::vector<int64_t>&, size_t, size_t, py::object>(),
           py::arg("nodes"), py::arg("leaves"), py::arg("batch") = 0, py::arg("batch_bytes") = 0,
           py::arg("on_batch") = py::none())
      .def("take", &Hooks::take)
      .def("detach", &Hooks::detach);
}
