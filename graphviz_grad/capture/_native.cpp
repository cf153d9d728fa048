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
// `cpu_stats(tensors)` gives each tensor's (float64 sum, min, max, float64 norm) with the very
// ATen calls of `summary._cpu_stats`, so the same numbers bit for bit, without a Python call and
// four wrapped results per reduction (about half what a summary of a small tensor costs).
#include <ATen/ATen.h>
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/node.h>
#include <torch/csrc/autograd/python_cpp_function.h>
#include <torch/csrc/autograd/python_function.h>
#include <torch/csrc/autograd/python_variable.h>

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

// (float64 sum, min, max, float64 norm) of each float32/float64 CPU tensor: `summary._cpu_stats`
// (`float(d.sum())`, `torch.aminmax(t)`, `torch.linalg.vector_norm(d)` with `d = t.double()`).
std::vector<Stats> cpu_stats(const std::vector<at::Tensor>& tensors) {
  std::vector<Stats> found;
  found.reserve(tensors.size());
  py::gil_scoped_release nogil;  // as torch's own ops, which let other threads run meanwhile
  at::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    const at::Tensor d = t.scalar_type() == at::kDouble ? t : t.to(at::kDouble);
    auto extremes = at::aminmax(t);
    const double total = d.sum().item<double>();
    const double lo = std::get<0>(extremes).item<double>();
    const double hi = std::get<1>(extremes).item<double>();
    const double norm = at::linalg_vector_norm(d, 2).item<double>();
    found.emplace_back(total, lo, hi, norm);
  }
  return found;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gradviz's C++ gradient pre-hooks and statistics (graphviz_grad.capture.native)";
  m.def("hooks_on", &hooks_on);
  m.def("cpu_stats", &cpu_stats, py::arg("tensors"));
  py::class_<Hooks>(m, "Hooks")
      .def(py::init<const py::list&, const std::vector<int64_t>&, size_t, py::object>(),
           py::arg("nodes"), py::arg("leaves"), py::arg("batch") = 0,
           py::arg("on_batch") = py::none())
      .def("take", &Hooks::take)
      .def("detach", &Hooks::detach);
}
