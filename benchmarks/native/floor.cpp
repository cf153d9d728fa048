// The floor of a recorder below Python, for benchmarks/native_floor.py (not part of gradviz).
//
// A thread-local RecordFunction end callback sees every dispatcher op once autograd has set its
// outputs' grad_fn, and keeps what per_op.py's MinimalRecorder keeps: a weak reference to the
// node, the output (without its autograd metadata), the op's name and the innermost Python code
// object and line. A C++ FunctionPreHook keeps each hooked node's incoming gradients in a slot.
#include <Python.h>
#include <frameobject.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/node.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/autograd/python_cpp_function.h>
#include <torch/csrc/autograd/python_function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <pybind11/pybind11.h>
#include <vector>
#include <memory>
#include <mutex>

namespace py = pybind11;
using torch::autograd::Node;

struct Rec {
  c10::weak_intrusive_ptr<Node> node;
  at::Tensor out;
  const char* name;
  PyCodeObject* code;
  int line;
};

static std::vector<Rec> g_recs;
static at::CallbackHandle g_handle = 0;
static bool g_frames = true;

static void record_one(const at::RecordFunction& fn, const at::Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return;
  auto gf = t.grad_fn();
  if (!gf) return;
  PyCodeObject* code = nullptr;
  int line = 0;
  if (g_frames) {
    PyGILState_STATE s = PyGILState_Ensure();
    PyFrameObject* f = PyEval_GetFrame();
    if (f) { code = PyFrame_GetCode(f); line = PyFrame_GetLineNumber(f); }
    PyGILState_Release(s);
  }
  g_recs.push_back(Rec{c10::weak_intrusive_ptr<Node>(gf), t.variable_data(), fn.name(), code, line});
}

static void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  for (const auto& iv : fn.outputs()) {
    if (iv.isTensor()) record_one(fn, iv.toTensor());
    else if (iv.isTensorList()) for (const at::Tensor& t : iv.toTensorVector()) record_one(fn, t);
  }
}

static void start() {
  g_handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(nullptr, on_end).needsOutputs(true).scopes({at::RecordScope::FUNCTION}));
}
static py::list alive() {
  py::list out;
  for (auto& r : g_recs) {
    auto n = r.node.lock();
    if (n) out.append(py::reinterpret_steal<py::object>(torch::autograd::functionToPyObject(n)));
  }
  return out;
}
static size_t stop() {
  at::removeCallback(g_handle);
  size_t n = g_recs.size();
  py::gil_scoped_acquire g;
  for (auto& r : g_recs) Py_XDECREF(r.code);
  g_recs.clear();
  return n;
}

// -- native pre-hooks ----------------------------------------------------------------------
// Engine threads (one per device) may run hooks at once: the store is guarded.
struct Store {
  std::mutex lock;
  std::vector<std::vector<at::Tensor>> grads;
  std::vector<size_t> order;
  bool live = true;
};
static std::shared_ptr<Store> g_store;

struct GradPre : torch::autograd::FunctionPreHook {
  std::shared_ptr<Store> store; size_t slot;
  GradPre(std::shared_ptr<Store> s, size_t i) : store(std::move(s)), slot(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& grads) override {
    std::lock_guard<std::mutex> guard(store->lock);
    if (store->live) {
      store->grads[slot] = grads;
      store->order.push_back(slot);
    }
    return grads;
  }
};

static c10::intrusive_ptr<Node> as_node(PyObject* obj) {
  if (torch::autograd::THPCppFunction_Check(obj)) return ((torch::autograd::THPCppFunction*)obj)->cdata;
  if (THPFunction_Check(obj)) return ((THPFunction*)obj)->cdata;
  return c10::intrusive_ptr<Node>();
}

static size_t hook_all(py::list nodes) {
  g_store = std::make_shared<Store>();
  g_store->grads.resize(nodes.size());
  size_t i = 0;
  for (auto h : nodes) {
    auto n = as_node(h.ptr());
    if (n) n->add_pre_hook(std::make_unique<GradPre>(g_store, i));
    ++i;
  }
  return i;
}
// How many hooked nodes got their gradients; the hooks go inert and the tensors are dropped.
static size_t grads_seen() {
  std::lock_guard<std::mutex> guard(g_store->lock);
  size_t k = g_store->order.size();
  g_store->live = false;
  g_store->grads.clear();
  g_store->order.clear();
  return k;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("start", &start);
  m.def("stop", &stop);
  m.def("alive", &alive);
  m.def("frames", [](bool on) { g_frames = on; });
  m.def("hook_all", &hook_all);
  m.def("grads_seen", &grads_seen);
}
