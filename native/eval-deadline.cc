// run(ms, fn, ...args): calls fn(...args) on this thread and stops it if it is still running `ms` ms
// later, the way node's vm module stops a script past its `timeout`, but with one watchdog thread per
// isolate for the process's life instead of a thread started per call (~100 us each here). Past the
// deadline the watchdog asks V8 to terminate execution; V8 unwinds every JavaScript and WebAssembly
// frame back to this call (a loop's back edge and a function's entry check for it), where the
// termination is cancelled and an ordinary Error with code "EDEADLINE" is thrown instead, so the caller
// carries on. What fn was in the middle of is abandoned: the caller must discard any state fn can
// leave half-written (docs/engines.md, "OPA evaluation deadline"). Only a termination this module
// asked for is cancelled: one from elsewhere (worker.terminate(), process exit) goes on unwinding.
//
// Cost per call, no deadline reached: one mutex taken twice and a clock read (~150 ns in all here). The watchdog does not
// wake per call: it sleeps until the deadline of the call it saw armed, then looks again; it is
// signalled only when a call is armed while it idles.
#include <node.h>
#include <v8.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

struct Watchdog {
  v8::Isolate *isolate;
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false;   // a call is running under a deadline
  bool fired = false;   // the watchdog terminated that call
  bool idle = false;    // the watchdog waits with no deadline: arm() must signal it
  bool stop = false;
  uint64_t call = 0;    // which call is armed
  Clock::time_point deadline;
  std::thread thread;

  explicit Watchdog(v8::Isolate *i) : isolate(i), thread([this] { Loop(); }) {}

  void Loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stop) {
      if (!armed) {
        idle = true;
        cv.wait(lock);
        idle = false;
        continue;
      }
      const uint64_t watched = call;
      const Clock::time_point until = deadline;
      // No predicate: arming or finishing a call does not signal, so this wakes at `until` (or on stop).
      cv.wait_until(lock, until);
      if (!stop && armed && call == watched && Clock::now() >= until && !fired) {
        fired = true;
        isolate->TerminateExecution();
      }
      // The same call still armed after it fired: wait for its end (Disarm signals a fired call).
      while (!stop && armed && call == watched && fired) cv.wait(lock);
    }
  }

  // False when a call is armed already (run() inside run()).
  bool Arm(double ms) {
    std::lock_guard<std::mutex> lock(mu);
    if (armed) return false;
    armed = true;
    fired = false;
    call++;
    deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(ms * 1000));
    if (idle) cv.notify_one();
    return true;
  }

  // Whether the watchdog stopped this call; a termination it asked for is cancelled before returning.
  bool Disarm() {
    std::lock_guard<std::mutex> lock(mu);
    armed = false;
    if (!fired) return false;
    fired = false;
    isolate->CancelTerminateExecution();
    cv.notify_one();
    return true;
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
      cv.notify_one();
    }
    thread.join();
  }
};

void ThrowCoded(v8::Isolate *isolate, const char *code, const char *message) {
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::Local<v8::Value> error = v8::Exception::Error(v8::String::NewFromUtf8(isolate, message).ToLocalChecked());
  error.As<v8::Object>()
      ->Set(context, v8::String::NewFromUtf8Literal(isolate, "code"), v8::String::NewFromUtf8(isolate, code).ToLocalChecked())
      .Check();
  isolate->ThrowException(error);
}

void Run(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  auto *dog = static_cast<Watchdog *>(info.Data().As<v8::External>()->Value());
  if (info.Length() < 2 || !info[0]->IsNumber() || !info[1]->IsFunction()) {
    ThrowCoded(isolate, "EARG", "run(ms, fn, ...args) needs a deadline in ms and a function");
    return;
  }
  const double ms = info[0].As<v8::Number>()->Value();
  if (!(ms > 0 && ms <= 3600e3)) {
    ThrowCoded(isolate, "EARG", "run(ms, ...): ms must be over 0 and at most an hour");
    return;
  }
  constexpr int kMaxArgs = 8;
  const int argc = info.Length() - 2 > kMaxArgs ? kMaxArgs : info.Length() - 2;
  v8::Local<v8::Value> argv[kMaxArgs];
  for (int i = 0; i < argc; i++) argv[i] = info[i + 2];
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::MaybeLocal<v8::Value> result;
  bool stopped;
  {
    v8::TryCatch tryCatch(isolate);
    if (!dog->Arm(ms)) {
      ThrowCoded(isolate, "ENESTED", "run() was called from inside run(): one deadline at a time");
      tryCatch.ReThrow();
      return;
    }
    result = info[1].As<v8::Function>()->Call(context, v8::Undefined(isolate), argc, argv);
    stopped = dog->Disarm();
    if (!stopped) {
      v8::Local<v8::Value> value;
      if (result.ToLocal(&value)) info.GetReturnValue().Set(value);
      else tryCatch.ReThrow();  // fn's own exception, or a termination not asked for here
      return;
    }
    // Stopped: whatever fn returned or threw is dropped with the TryCatch.
  }
  ThrowCoded(isolate, "EDEADLINE", "stopped at its deadline");
}

void Cleanup(void *data) {
  auto *dog = static_cast<Watchdog *>(data);
  dog->Stop();
  delete dog;
}

}  // namespace

NODE_MODULE_INIT() {
  v8::Isolate *isolate = context->GetIsolate();
  auto *dog = new Watchdog(isolate);
  node::AddEnvironmentCleanupHook(isolate, Cleanup, dog);
  v8::Local<v8::FunctionTemplate> run = v8::FunctionTemplate::New(isolate, Run, v8::External::New(isolate, dog));
  exports.As<v8::Object>()
      ->Set(context, v8::String::NewFromUtf8Literal(isolate, "run"), run->GetFunction(context).ToLocalChecked())
      .Check();
}
