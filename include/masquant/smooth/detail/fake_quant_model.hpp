// fake_quant_model.hpp: the smoothing solvers' model of a quantized linear group — its smoothed,
// fake-quantized forward on one modality's tokens, the reconstruction error against the float
// output, and the straight-through gradient of that error with respect to the smoothing factors.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <masquant/parallel.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/smooth/detail/ste_quantizer.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/eigen.hpp>
#include <vector>

namespace masquant::detail {

/// Tokens per task and output rows per task. Fixed (never derived from the thread count), so
/// every sum is formed in the same order however many threads run the tasks.
inline constexpr index_t smooth_token_chunk = 256;
inline constexpr index_t smooth_row_chunk = 256;
/// Tokens held in the work buffers at once; longer token lists are processed in slabs.
inline constexpr index_t smooth_slab_tokens = 512;
/// Float outputs x·Wᵀ the public solvers keep between evaluations (elements over all
/// modalities, in modality order): 2^26 floats = 256 MiB.
inline constexpr index_t smooth_output_cache_elements = index_t{1} << 26;

/// The fake-quant model the solvers (α search, learned MAS, modality_sqnr) optimise and score:
/// for one modality's tokens x_n (rows of inputs[m]), an activation-side factor a and a
/// weight-side factor b,
///
///   ŷ_n = Q_a(x_n ⊘ a) · Q_w(W·diag(b))ᵀ,   y_n = x_n·Wᵀ,   R = ŷ - y,
///
/// over the stacked weights of a group (per_tensor weight quantization stays per linear), and
/// Σ|R| or ΣR², Σ(y + bias)², ΣR². On request it also adds scale·∂(Σ|R| or ΣR²)/∂a and
/// scale·∂(...)/∂b (straight-through, see ste_backward) to double accumulators. MAS uses a = b =
/// s_m and adds the two; keeping them apart lets tests check each chain-rule path on its own.
///
/// The quantizers are the straight-through ones of ste_quantizer.hpp; for T = float their forward
/// is bit for bit the quant layer's, so Q_w(W·diag(b)) here is exactly quantize_smoothed()'s
/// weight, dequantized (tested), and the deployable layer differs only by its integer GEMM.
/// T is the compute type of the quantizers and GEMMs (float in the library, double in tests);
/// every sum is in double. The outputs y of whole modalities are computed once and kept when they
/// fit `cache_elements` (every factor set needs the same y). Holds work buffers: not
/// thread-safe, reuse it across calls.
template <class T>
class fake_quant_model {
 public:
  using matrix = row_matrix<T>;

  struct sums {
    double loss = 0;    ///< Σ|R| (or ΣR² when squared)
    double signal = 0;  ///< Σ(y + bias)²
    double noise = 0;   ///< ΣR²
  };

  /// Copies the group's weights into one stacked [Σ d_out, d_in] matrix of T. Arguments must be
  /// valid (checked by the public callers).
  fake_quant_model(const linear_group& group, const modality_inputs& inputs,
                   const quant_spec& weight_spec, const quant_spec& act_spec,
                   parallel_for_fn parallel, index_t cache_elements = 0)
      : inputs_(inputs),
        wspec_(weight_spec),
        aspec_(act_spec),
        parallel_(parallel ? std::move(parallel) : parallel_for_fn(serial_for)),
        d_in_(group.d_in()),
        d_out_(group.outputs()),
        w_(d_out_, d_in_),
        bias_(static_cast<std::size_t>(d_out_), 0.0) {
    index_t row = 0;
    block_rows_.push_back(0);
    for (std::size_t k = 0; k < group.weights.size(); ++k) {
      const auto& wk = group.weights[k];
      w_.middleRows(row, wk.rows()) = as_eigen(wk).template cast<T>();
      if (k < group.biases.size() && !group.biases[k].empty())
        for (index_t o = 0; o < wk.rows(); ++o)
          bias_[static_cast<std::size_t>(row + o)] = group.biases[k][o];
      row += wk.rows();
      block_rows_.push_back(row);
    }
    v_.resize(d_out_, d_in_);
    wq_.resize(d_out_, d_in_);
    index_t budget = cache_elements;
    for (const auto& x : inputs_) {
      const bool fits = x.rows() > 0 && x.rows() * d_out_ <= budget;
      if (fits) budget -= x.rows() * d_out_;
      cacheable_.push_back(fits);
    }
    y_cache_.resize(inputs_.size());
  }

  index_t d_in() const noexcept { return d_in_; }
  index_t outputs() const noexcept { return d_out_; }
  /// Q_w(W·diag(b)) of the last run(), dequantized ([Σ d_out, d_in]).
  const matrix& quantized_weight() const noexcept { return wq_; }

  /// Runs modality m on `count` tokens: rows[i] of inputs[m], or tokens 0..count-1 when rows is
  /// null. a, b: [d_in] factors (null: all ones). When g_a or g_b is non-null, adds
  /// grad_scale·∂loss/∂a to g_a and grad_scale·∂loss/∂b to g_b ([d_in] each).
  sums run(index_t m, const T* a, const T* b, const index_t* rows, index_t count, bool squared,
           double grad_scale = 0, double* g_a = nullptr, double* g_b = nullptr);

 private:
  // The heavy members are defined below the class (not inline), so that under
  // MASQUANT_SEPARATE_COMPILATION the float model compiles once (extern template below).
  void prepare_weight(const T* b);
  void fill_cache(index_t m);
  void ensure_buffers(index_t n);
  sums token_chunk(index_t m, const T* a, const index_t* rows, index_t base, index_t r0, index_t r1,
                   bool squared, bool grad, double grad_scale);
  void weight_gradient(double* g_b);

  modality_inputs inputs_;
  quant_spec wspec_, aspec_;
  parallel_for_fn parallel_;
  index_t d_in_, d_out_;
  matrix w_;                         // stacked weights
  std::vector<double> bias_;         // stacked biases (0 where absent)
  std::vector<index_t> block_rows_;  // first row of each linear, then the total
  matrix v_, wq_, dwq_;              // W·diag(b), Q_w of it, and the gradient w.r.t. it
  matrix x_, u_, a_, da_;            // per slab: inputs, x ⊘ a, Q_a of it, gradients
  matrix r_, y_;                     // per slab: ŷ then ∂loss/∂ŷ, and y
  std::vector<double> ga_part_;      // per token chunk: partial ∂loss/∂a
  std::vector<bool> cacheable_;      // per modality: y fits the cache
  std::vector<matrix> y_cache_;      // per modality: y = x·Wᵀ of every token, once computed
};

template <class T>
typename fake_quant_model<T>::sums fake_quant_model<T>::run(index_t m, const T* a, const T* b,
                                                            const index_t* rows, index_t count,
                                                            bool squared, double grad_scale,
                                                            double* g_a, double* g_b) {
  const bool grad = g_a != nullptr || g_b != nullptr;
  const auto mi = static_cast<std::size_t>(m);
  if (cacheable_[mi] && y_cache_[mi].rows() == 0) fill_cache(m);
  prepare_weight(b);
  if (grad) dwq_.setZero(d_out_, d_in_);
  ensure_buffers(std::min(count, smooth_slab_tokens));
  sums total;
  std::vector<double> ga_slab(static_cast<std::size_t>(d_in_), 0.0);
  for (index_t base = 0; base < count; base += smooth_slab_tokens) {
    const index_t n = std::min(smooth_slab_tokens, count - base);
    const index_t chunks = (n + smooth_token_chunk - 1) / smooth_token_chunk;
    std::vector<sums> part(static_cast<std::size_t>(chunks));
    if (grad) ga_part_.assign(static_cast<std::size_t>(chunks * d_in_), 0.0);
    parallel_(chunks, [&](index_t c) {
      part[static_cast<std::size_t>(c)] =
          token_chunk(m, a, rows, base, c * smooth_token_chunk,
                      std::min(n, (c + 1) * smooth_token_chunk), squared, grad, grad_scale);
    });
    for (index_t c = 0; c < chunks; ++c) {
      const auto& p = part[static_cast<std::size_t>(c)];
      total.loss += p.loss;
      total.signal += p.signal;
      total.noise += p.noise;
      if (grad)
        for (index_t j = 0; j < d_in_; ++j)
          ga_slab[static_cast<std::size_t>(j)] += ga_part_[static_cast<std::size_t>(c * d_in_ + j)];
    }
    if (grad) {
      // ∂/∂Q_w(V) += Gᵀ·A, by output rows (each row of dwq_ is written by one task).
      const index_t row_tasks = (d_out_ + smooth_row_chunk - 1) / smooth_row_chunk;
      parallel_(row_tasks, [&](index_t t) {
        const index_t o0 = t * smooth_row_chunk, no = std::min(smooth_row_chunk, d_out_ - o0);
        dwq_.middleRows(o0, no).noalias() +=
            r_.topRows(n).middleCols(o0, no).transpose() * a_.topRows(n);
      });
    }
  }
  if (g_a)
    for (index_t j = 0; j < d_in_; ++j) g_a[j] += ga_slab[static_cast<std::size_t>(j)];
  if (grad && g_b) weight_gradient(g_b);
  return total;
}

/// V = W·diag(b), Q_w(V) -> wq_.
template <class T>
void fake_quant_model<T>::prepare_weight(const T* b) {
  const index_t row_tasks = (d_out_ + smooth_row_chunk - 1) / smooth_row_chunk;
  parallel_(row_tasks, [&](index_t t) {
    const index_t o0 = t * smooth_row_chunk, o1 = std::min(d_out_, o0 + smooth_row_chunk);
    for (index_t o = o0; o < o1; ++o)
      for (index_t j = 0; j < d_in_; ++j) v_(o, j) = b ? w_(o, j) * b[j] : w_(o, j);
    if (wspec_.gran != granularity::per_tensor || wspec_.is_identity())
      ste_forward(wspec_, v_.data(), d_in_, o0, o1, d_in_, wq_.data(), d_in_);
  });
  if (wspec_.gran == granularity::per_tensor && !wspec_.is_identity())
    for (std::size_t k = 0; k + 1 < block_rows_.size(); ++k)
      ste_forward(wspec_, v_.data(), d_in_, block_rows_[k], block_rows_[k + 1], d_in_, wq_.data(),
                  d_in_);
}

/// y = x·Wᵀ for every token of modality m, by chunks of tokens.
template <class T>
void fake_quant_model<T>::fill_cache(index_t m) {
  const auto& in = inputs_[static_cast<std::size_t>(m)];
  auto& y = y_cache_[static_cast<std::size_t>(m)];
  y.resize(in.rows(), d_out_);
  const index_t chunks = (in.rows() + smooth_token_chunk - 1) / smooth_token_chunk;
  parallel_(chunks, [&](index_t c) {
    const index_t r0 = c * smooth_token_chunk, n = std::min(smooth_token_chunk, in.rows() - r0);
    y.middleRows(r0, n).noalias() =
        as_eigen(in.middle_rows(r0, n)).template cast<T>() * w_.transpose();
  });
}

template <class T>
void fake_quant_model<T>::ensure_buffers(index_t n) {
  if (x_.rows() >= n) return;
  x_.resize(n, d_in_);
  u_.resize(n, d_in_);
  a_.resize(n, d_in_);
  da_.resize(n, d_in_);
  r_.resize(n, d_out_);
  y_.resize(n, d_out_);
}

/// Slab rows [r0, r1) = tokens base + r0 .. base + r1 of the list.
template <class T>
typename fake_quant_model<T>::sums fake_quant_model<T>::token_chunk(index_t m, const T* a,
                                                                    const index_t* rows,
                                                                    index_t base, index_t r0,
                                                                    index_t r1, bool squared,
                                                                    bool grad, double grad_scale) {
  const index_t nc = r1 - r0;
  const auto& in = inputs_[static_cast<std::size_t>(m)];
  for (index_t i = 0; i < nc; ++i) {
    const index_t src = rows ? rows[base + r0 + i] : base + r0 + i;
    const float* xr = in.row_data(src);
    for (index_t j = 0; j < d_in_; ++j) {
      x_(r0 + i, j) = static_cast<T>(xr[j]);
      u_(r0 + i, j) = a ? static_cast<T>(xr[j]) / a[j] : static_cast<T>(xr[j]);
    }
  }
  ste_forward(aspec_, u_.data(), d_in_, r0, r1, d_in_, a_.data(), d_in_);
  auto r = r_.middleRows(r0, nc);
  auto y = y_.middleRows(r0, nc);
  r.noalias() = a_.middleRows(r0, nc) * wq_.transpose();
  if (const auto& yc = y_cache_[static_cast<std::size_t>(m)]; yc.rows() > 0) {
    for (index_t i = 0; i < nc; ++i) y.row(i) = yc.row(rows ? rows[base + r0 + i] : base + r0 + i);
  } else {
    y.noalias() = x_.middleRows(r0, nc) * w_.transpose();
  }
  sums s;
  for (index_t i = 0; i < nc; ++i)
    for (index_t o = 0; o < d_out_; ++o) {
      const double yo = static_cast<double>(y(i, o));
      const double e = static_cast<double>(r(i, o)) - yo;
      const double full = yo + bias_[static_cast<std::size_t>(o)];
      s.signal += full * full;
      s.noise += e * e;
      s.loss += squared ? e * e : std::abs(e);
      // d|e|/de = sign(e) with sign(0) = 0 (torch's abs backward); d e²/de = 2e.
      if (grad) r(i, o) = static_cast<T>(grad_scale * (squared ? 2 * e : (e > 0) - (e < 0)));
    }
  if (!grad) return s;
  auto da = da_.middleRows(r0, nc);
  da.noalias() = r * wq_;
  // In place: ste_backward reads each upstream value before it writes that element.
  ste_backward(aspec_, u_.data(), d_in_, da_.data(), d_in_, r0, r1, d_in_, da_.data());
  // u = x / a, so ∂u/∂a = -u / a.
  double* ga = ga_part_.data() + (r0 / smooth_token_chunk) * d_in_;
  for (index_t i = 0; i < nc; ++i)
    for (index_t j = 0; j < d_in_; ++j)
      ga[j] -= static_cast<double>(da(i, j)) * static_cast<double>(u_(r0 + i, j)) /
               (a ? static_cast<double>(a[j]) : 1.0);
  return s;
}

/// From dwq_ = ∂loss/∂Q_w(V): through Q_w (in place), then ∂V_oj/∂b_j = W_oj into g_b.
template <class T>
void fake_quant_model<T>::weight_gradient(double* g_b) {
  const index_t row_tasks = (d_out_ + smooth_row_chunk - 1) / smooth_row_chunk;
  const bool by_rows = wspec_.gran != granularity::per_tensor || wspec_.is_identity();
  if (!by_rows)
    for (std::size_t k = 0; k + 1 < block_rows_.size(); ++k)
      ste_backward(wspec_, v_.data(), d_in_, dwq_.data(), d_in_, block_rows_[k], block_rows_[k + 1],
                   d_in_, dwq_.data());
  std::vector<double> part(static_cast<std::size_t>(row_tasks * d_in_), 0.0);
  parallel_(row_tasks, [&](index_t t) {
    const index_t o0 = t * smooth_row_chunk, o1 = std::min(d_out_, o0 + smooth_row_chunk);
    if (by_rows)
      ste_backward(wspec_, v_.data(), d_in_, dwq_.data(), d_in_, o0, o1, d_in_, dwq_.data());
    double* p = part.data() + t * d_in_;
    for (index_t o = o0; o < o1; ++o)
      for (index_t j = 0; j < d_in_; ++j)
        p[j] += static_cast<double>(dwq_(o, j)) * static_cast<double>(w_(o, j));
  });
  for (index_t t = 0; t < row_tasks; ++t)
    for (index_t j = 0; j < d_in_; ++j) g_b[j] += part[static_cast<std::size_t>(t * d_in_ + j)];
}

#ifdef MASQUANT_SEPARATE_COMPILATION
// The library's model (float) is compiled once, by <masquant/src.hpp>.
extern template class fake_quant_model<float>;
#endif

}  // namespace masquant::detail
