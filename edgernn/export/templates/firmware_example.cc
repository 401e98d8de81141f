// firmware_example.cc - the edgernn explicit-state GRU step loop on TensorFlow Lite Micro.
//
// One sensor reading per call. The model holds weights only: the hidden state h[H] lives here,
// in the application, is fed in with every reading and replaced by the h_next the model returns.
// Reset it to zeros after a restart or a gap in the data (cold start).
//
// Build: add model_data.cc and this file to a TFLM project (tflite-micro/tensorflow/lite/micro),
// e.g. make -f tensorflow/lite/micro/tools/make/Makefile ... or your vendor's TFLM component.
// The model has float32 I/O; QUANTIZE / DEQUANTIZE at its edges convert to and from int8.
// A model with jump inputs (model_data.h defines EDGERNN_JUMP_INPUTS) takes a third input j[F],
// each feature's rate of jumps, which this example keeps per stream too (JumpInputs below).
// A model normalised per stream (model_data.h defines EDGERNN_STREAM_NORM: a general-purpose model)
// learns each feature's mean and std from the stream's first kEdgernnNormWarmup readings
// (StreamNormalise below) and reports no NLL for them.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

#ifndef EDGERNN_COMPONENTS
#define EDGERNN_COMPONENTS 1  // model_data.h of a Gaussian head does not define it
#endif
#ifndef EDGERNN_JUMP_INPUTS
#define EDGERNN_JUMP_INPUTS 0  // model_data.h of a model without jump inputs does not define it
#endif
#ifndef EDGERNN_STREAM_NORM
#define EDGERNN_STREAM_NORM 0  // model_data.h of a bundle with fixed normalisation does not define it
#endif

constexpr int kF = kEdgernnFeatures;  // readings per time step
constexpr int kH = kEdgernnHidden;    // hidden state size
constexpr int kK = EDGERNN_COMPONENTS;  // Gaussians per feature in the head (1: one Gaussian)
constexpr int kInputH = EDGERNN_JUMP_INPUTS ? 2 : 1;  // the model's inputs: x, (j,) h

alignas(16) uint8_t g_arena[kEdgernnArenaBytes];
tflite::MicroInterpreter* g_interpreter = nullptr;

float g_h[kH];             // hidden state h_{t-1}: per stream, owned by the application
float g_mean[kK * kF];     // predicted mean of the next (normalised) reading, per component k at k F + i
float g_logvar[kK * kF];   // and its log-variance
float g_logw[kK * kF];     // log mixture weight (log softmax of the logits; 0 when kK == 1)
bool g_have_prediction = false;

#if EDGERNN_STREAM_NORM
// edgernn-stream-norm-begin
// Per-stream normalisation (edgernn/train/data.py: stream_normalise), in double precision. Per
// feature over the stream's first kEdgernnNormWarmup readings: the running (Welford) mean and
// variance, each reading normalised after its own update; after warm-up: normalised, then an EW
// update at rate kEdgernnNormAdapt (0: frozen). The std is floored at max(kEdgernnNormMinStd,
// kEdgernnNormMinRelStd |mean|). Per stream, like g_h, but not reset with it after a gap (the
// detector keeps it too); a restart starts it afresh (StreamNormaliseReset).
double g_norm_mean[kF];     // the stream's mean per feature (sensor units)
double g_norm_var[kF];      // and its variance
double g_norm_count = 0.0;  // readings seen

void StreamNormaliseReset() {
  for (int i = 0; i < kF; ++i) g_norm_mean[i] = g_norm_var[i] = 0.0;
  g_norm_count = 0.0;
}

// raw[kF] sensor units -> z[kF] = (raw - mean) / std, std_dev[kF] the std each was normalised with.
// Returns true while warming up (this reading among the first kEdgernnNormWarmup).
bool StreamNormalise(const float* raw, double* z, double* std_dev) {
  g_norm_count += 1.0;
  const double n = g_norm_count;
  const bool warming = n <= kEdgernnNormWarmup;
  for (int i = 0; i < kF; ++i) {
    const double v = raw[i];
    if (warming) {  // Welford: mean and (population) variance of the readings so far
      const double d = v - g_norm_mean[i];
      const double mean = g_norm_mean[i] + d / n;
      g_norm_var[i] += (d * (v - mean) - g_norm_var[i]) / n;
      g_norm_mean[i] = mean;
    }
    const double floor_ = std::fmax(kEdgernnNormMinStd, kEdgernnNormMinRelStd * std::fabs(g_norm_mean[i]));
    // max(sqrt(var), floor) is stream_normalise's sqrt(max(var, floor^2)) without floor^2's overflow
    std_dev[i] = std::fmax(std::sqrt(std::fmax(g_norm_var[i], 0.0)), floor_);
    z[i] = (v - g_norm_mean[i]) / std_dev[i];
    if (!warming && kEdgernnNormAdapt > 0.0) {  // follow the stream slowly, after normalising
      const double d = v - g_norm_mean[i];
      g_norm_mean[i] += kEdgernnNormAdapt * d;
      g_norm_var[i] += kEdgernnNormAdapt * (d * d - g_norm_var[i]);
    }
  }
  return warming;
}
// edgernn-stream-norm-end
#endif

#if EDGERNN_JUMP_INPUTS
// edgernn-jump-inputs-begin
// The jump input j[kF] of one reading (edgernn/backends/base.py: jump_rates, then jump_input):
// per feature a jump is |raw_t - raw_t-1| > kEdgernnJumpThreshold std (none at the stream's first
// reading); its rate is the mean of the jumps over the first kEdgernnJumpMemory readings, then
// their EW mean with weight 1 / kEdgernnJumpMemory; j = min(1 + log10(rate + floor) / -log10(floor), 1),
// in [0, 1]. Per stream, like g_h, but not reset with it after a gap (the detector keeps it too);
// a restart starts it afresh (g_jump_count = 0). std_dev[kF]: the std the readings are normalised with.
double g_jump_rate[kF];     // the jump rate per feature
float g_last_raw[kF];       // the previous reading
double g_jump_count = 0.0;  // readings seen

void JumpInputs(const float* raw, const float* std_dev, float* j) {
  g_jump_count += 1.0;
  const double memory = kEdgernnJumpMemory, floor_ = kEdgernnJumpFloor;
  const double weight = g_jump_count < memory ? g_jump_count : memory;  // min(readings, memory)
  for (int i = 0; i < kF; ++i) {
    const bool jump = g_jump_count > 1.0 &&
        std::fabs(static_cast<double>(raw[i]) - g_last_raw[i]) > static_cast<double>(kEdgernnJumpThreshold) * std_dev[i];
    g_jump_rate[i] += ((jump ? 1.0 : 0.0) - g_jump_rate[i]) / weight;
    g_last_raw[i] = raw[i];
    j[i] = static_cast<float>(std::fmin(1.0 + std::log10(g_jump_rate[i] + floor_) / -std::log10(floor_), 1.0));
  }
}
// edgernn-jump-inputs-end
#endif

bool Setup() {
  const tflite::Model* model = tflite::GetModel(g_edgernn_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) return false;
  // Exactly the ops the exporter emits (edgernn/export/tflite_export.py).
  static tflite::MicroMutableOpResolver<10> resolver;
  resolver.AddQuantize();
  resolver.AddDequantize();
  resolver.AddFullyConnected();
  resolver.AddAdd();
  resolver.AddSub();
  resolver.AddMul();
  resolver.AddLogistic();
  resolver.AddTanh();
  resolver.AddPad();
  resolver.AddConcatenation();  // a mixture head tiles x K times (kK > 1)
  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return false;
  g_interpreter = &interpreter;
  std::memset(g_h, 0, sizeof(g_h));  // cold start
#if EDGERNN_JUMP_INPUTS
  g_jump_count = 0.0;  // (the first reading's weight 1 then overwrites the rates)
#endif
#if EDGERNN_STREAM_NORM
  StreamNormaliseReset();
#endif
  return true;
}

// Score the reading against the previous prediction, then step the cell (test-then-train order).
// raw[kF] are sensor units; returns the negative log-likelihood (Gaussian, or the mixture's for
// kK > 1) per feature (summed, without the constant), or NAN while there is no prediction yet
// and, for a model normalised per stream, during its warm-up: those readings still step the
// model (its hidden state settles, as the detector's does), but they are not scored (the detector
// does not score them, training does not learn from them).
float Step(const float* raw) {
  float x[kF];
#if EDGERNN_STREAM_NORM
  // Normalise per stream (StreamNormalise), then clip.
  double z[kF], sd[kF];  // the normalised readings and the std each was normalised with
  const bool warming = StreamNormalise(raw, z, sd);
  float std_dev[kF];
  for (int i = 0; i < kF; ++i) {  // (clipped in double: a float cast of |z| > FLT_MAX is undefined)
    const double clip = kEdgernnInputClip;
    x[i] = static_cast<float>(z[i] > clip ? clip : (z[i] < -clip ? -clip : z[i]));
    std_dev[i] = static_cast<float>(sd[i]);
  }
#else
  // Normalise and clip with the bundle's fixed kEdgernnNormMean/Std.
  const bool warming = false;
#if EDGERNN_JUMP_INPUTS
  const float* std_dev = kEdgernnJumpStd;  // the std floored as the detector floors it (the jump test's)
#else
  const float* std_dev = kEdgernnNormStd;
#endif
  for (int i = 0; i < kF; ++i) {
    float v = (raw[i] - kEdgernnNormMean[i]) / kEdgernnNormStd[i];
    x[i] = v > kEdgernnInputClip ? kEdgernnInputClip : (v < -kEdgernnInputClip ? -kEdgernnInputClip : v);
  }
#endif
#if EDGERNN_JUMP_INPUTS
  float jump_in[kF];  // the jump inputs, from the raw readings and the std they are normalised with
  JumpInputs(raw, std_dev, jump_in);
#else
  (void)std_dev;
#endif
  float nll = NAN;
  if (g_have_prediction && !warming) {
    nll = 0.0f;
    for (int i = 0; i < kF; ++i) {
      float t[kK], top = -INFINITY;  // log w_k + log N_k, then logsumexp over k
      for (int k = 0; k < kK; ++k) {
        const int j = k * kF + i;
        const float r = x[i] - g_mean[j];
        t[k] = g_logw[j] - 0.5f * (g_logvar[j] + r * r * std::exp(-g_logvar[j]));
        top = t[k] > top ? t[k] : top;
      }
      float sum = 0.0f;
      for (int k = 0; k < kK; ++k) sum += std::exp(t[k] - top);
      nll -= top + std::log(sum);
    }
  }
  TfLiteTensor* in_x = g_interpreter->input(0);        // float32[1, F]
  TfLiteTensor* in_h = g_interpreter->input(kInputH);  // float32[1, H]
  std::memcpy(in_x->data.f, x, sizeof(x));
#if EDGERNN_JUMP_INPUTS
  std::memcpy(g_interpreter->input(1)->data.f, jump_in, sizeof(jump_in));  // float32[1, F]
#endif
  std::memcpy(in_h->data.f, g_h, sizeof(g_h));
  if (g_interpreter->Invoke() != kTfLiteOk) return NAN;
  const float* pred = g_interpreter->output(0)->data.f;    // float32[1, 2F] = [mean | logvar]
                                                           // (kK > 1: [1, 3KF] = [means | logvars | logits])
  const float* h_next = g_interpreter->output(1)->data.f;  // float32[1, H]
  std::memcpy(g_h, h_next, sizeof(g_h));                   // state out -> state in next call
  for (int j = 0; j < kK * kF; ++j) {
    g_mean[j] = pred[j];
    float lv = pred[kK * kF + j];
    g_logvar[j] = lv < kEdgernnLogvarMin ? kEdgernnLogvarMin : (lv > kEdgernnLogvarMax ? kEdgernnLogvarMax : lv);
    g_logw[j] = 0.0f;
  }
  for (int i = 0; kK > 1 && i < kF; ++i) {  // log softmax of feature i's logits over the components
    float top = -INFINITY, sum = 0.0f;
    for (int k = 0; k < kK; ++k) top = pred[2 * kK * kF + k * kF + i] > top ? pred[2 * kK * kF + k * kF + i] : top;
    for (int k = 0; k < kK; ++k) sum += std::exp(pred[2 * kK * kF + k * kF + i] - top);
    for (int k = 0; k < kK; ++k) g_logw[k * kF + i] = pred[2 * kK * kF + k * kF + i] - top - std::log(sum);
  }
  g_have_prediction = true;
  return nll;
}

}  // namespace

int main() {
  if (!Setup()) {
    std::printf("edgernn: model setup failed\n");
    return 1;
  }
  float reading[kF];
#if EDGERNN_STREAM_NORM
  const int steps = kEdgernnNormWarmup + 100;  // NAN (warming up) for the first kEdgernnNormWarmup
#else
  const int steps = 100;
#endif
  for (int t = 0; t < steps; ++t) {  // replace with your sensor loop
    for (int i = 0; i < kF; ++i) reading[i] = kEdgernnNormMean[i] + kEdgernnNormStd[i] * std::sin(0.1f * t + i);
    const float nll = Step(reading);
    if (t % 10 == 0) std::printf("t=%d nll=%f\n", t, static_cast<double>(nll));
  }
  return 0;
}
