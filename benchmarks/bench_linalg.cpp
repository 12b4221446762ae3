// bench_linalg.cpp: whitening + cross-modal compensation of one d x d linear for its two
// non-reference modalities (2048 tokens each, ρ = 0.05), masquant's compute_compensation
// against the peers below, on the same data in the same process.
//
// Peers (arg 2 of BM_compensation):
//   0 textbook: SelfAdjointEigenSolver whitening T = Λ^½Uᵀ, G = T·ΔWᵀ, full BDCSVD, L = UΛ^-½U_r
//   1 cholesky_halko: LLᵀ = C + δI, T = Lᵀ, Halko's randomized SVD of G applying T and ΔWᵀ in
//     turn (p = 10, q = 2, QR after every product), L = T⁻¹U_r by a triangular solve
// Counters: ours_s (defaults: randomized path, no residual), ours_resid_s (residual_mode::always),
// ours_q1_s (power_iterations = 1), peer_s, speedup* = peer_s / ours*_s, and accuracy: resid_ours
// and resid_peer (‖X̃(ΔWᵀ − LR)‖_F / ‖X̃ΔWᵀ‖_F averaged over the modalities, recomputed here
// from the Gram for both), resid_ratio = resid_ours / resid_peer, resid_q1_ratio likewise.
// Times are the best of 3 runs (1 run at d = 4096).
// Threads (arg 1) set Eigen::setNbThreads; Eigen parallelises its GEMMs only under OpenMP. At one
// thread every time is thread CPU time, at two wall time (see now()); counter `cpu_time` says
// which.
//
// Run: build-x/benchmarks/bench_linalg --benchmark_filter='d:(1024|2048)/'
//      (a d:4096 textbook row runs for minutes: --benchmark_filter='d:4096/threads:1/peer:0')
#include <benchmark/benchmark.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <masquant/linalg/compensation.hpp>
#include <memory>

namespace {

using masquant::index_t;
constexpr index_t tokens = 2048;

// One-thread runs are timed in thread CPU time (a descheduled thread does not count: the machine
// is shared), two-thread runs in wall time.
bool cpu_clock = false;

double now() {
  if (cpu_clock) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct modality {
  Eigen::MatrixXd gram;   // C̃_m, Gram of the smoothed tokens
  Eigen::MatrixXd delta;  // ΔW_m = W·diag(s_m) − Q(W·diag(s_text))
};

struct problem {
  modality m[2];  // vision and audio; text is the reference
};

// Activations with the structure of real LLM inputs: per-channel scales (log-normal), a few
// outlier channels per modality, and a shared low-rank component (a decaying spectrum).
Eigen::MatrixXd activations(index_t d, std::uint64_t seed) {
  using masquant::detail::gaussian_matrix;
  Eigen::VectorXd scale = (0.5 * gaussian_matrix(d, 1, seed)).array().exp();
  for (index_t j = static_cast<index_t>(seed % 7); j < d; j += 97) scale[j] *= 20;
  Eigen::MatrixXd x = gaussian_matrix(tokens, d, seed + 1) * scale.asDiagonal();
  x.noalias() += 3.0 * gaussian_matrix(tokens, 32, seed + 2) * gaussian_matrix(32, d, seed + 3) *
                 scale.asDiagonal();
  return x;
}

// SmoothQuant factors (α = 0.5) and a per-row symmetric int8 fake-quant of W·diag(s_text).
const problem& get_problem(index_t d) {
  static std::map<index_t, std::unique_ptr<problem>> cache;
  auto& slot = cache[d];
  if (slot) return *slot;
  slot = std::make_unique<problem>();
  const Eigen::MatrixXd w = 0.02 * masquant::detail::gaussian_matrix(d, d, 7);
  const Eigen::ArrayXd w_max = w.cwiseAbs().colwise().maxCoeff().transpose().array().max(1e-5);
  const auto factors = [&](const Eigen::MatrixXd& x) -> Eigen::VectorXd {
    const Eigen::ArrayXd a = x.cwiseAbs().colwise().maxCoeff().transpose().array().max(1e-5);
    return (a.sqrt() / w_max.sqrt()).max(0.01).matrix();
  };
  const Eigen::VectorXd s_text = factors(activations(d, 100));
  Eigen::MatrixXd shared = w * s_text.asDiagonal();
  for (index_t o = 0; o < d; ++o) {
    const double step = shared.row(o).cwiseAbs().maxCoeff() / 127;
    for (index_t i = 0; i < d; ++i) shared(o, i) = std::nearbyint(shared(o, i) / step) * step;
  }
  for (int m = 0; m < 2; ++m) {
    const Eigen::MatrixXd x = activations(d, 200 + 100 * static_cast<std::uint64_t>(m));
    const Eigen::VectorXd s = factors(x);
    Eigen::MatrixXd raw(d, d);
    raw.noalias() = x.transpose() * x;
    masquant::smooth_gram(raw, s, slot->m[m].gram);
    masquant::delta_weight(w, s, shared, slot->m[m].delta);
  }
  return *slot;
}

struct factors {
  Eigen::MatrixXd l, r;
};

factors textbook(const modality& m, index_t rank) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m.gram);
  const double floor = 1e-6 * m.gram.diagonal().mean();
  const Eigen::VectorXd root = (eig.eigenvalues().array() + floor).sqrt();
  Eigen::MatrixXd g = root.asDiagonal() * (eig.eigenvectors().transpose() * m.delta.transpose());
  Eigen::BDCSVD<Eigen::MatrixXd> svd(g, Eigen::ComputeThinU | Eigen::ComputeThinV);
  factors f;
  f.l = eig.eigenvectors() * (root.cwiseInverse().asDiagonal() * svd.matrixU().leftCols(rank));
  f.r = svd.singularValues().head(rank).asDiagonal() * svd.matrixV().leftCols(rank).transpose();
  return f;
}

Eigen::MatrixXd orthonormalize(const Eigen::MatrixXd& y) {
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(y);
  Eigen::MatrixXd q = Eigen::MatrixXd::Identity(y.rows(), y.cols());
  qr.householderQ().applyThisOnTheLeft(q);
  return q;
}

factors cholesky_halko(const modality& m, index_t rank) {
  const index_t d = m.gram.rows(), k = rank + 10;
  Eigen::LLT<Eigen::MatrixXd> llt(m.gram + Eigen::MatrixXd::Identity(d, d) *
                                               (1e-6 * m.gram.diagonal().mean()));
  const auto t = llt.matrixU();  // T = Lᵀ
  const auto& dw = m.delta;
  Eigen::MatrixXd q =
      orthonormalize(t * (dw.transpose() * masquant::detail::gaussian_matrix(d, k, 0)));
  for (int it = 0; it < 2; ++it) {
    const Eigen::MatrixXd z = orthonormalize(dw * (t.transpose() * q));  // Gᵀ·Q
    q = orthonormalize(t * (dw.transpose() * z));                        // G·Z
  }
  const Eigen::MatrixXd b = (dw * (t.transpose() * q)).transpose();  // Qᵀ·G
  Eigen::BDCSVD<Eigen::MatrixXd> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
  factors f;
  f.l = t.solve(q * svd.matrixU().leftCols(rank));
  f.r = svd.singularValues().head(rank).asDiagonal() * svd.matrixV().leftCols(rank).transpose();
  return f;
}

// ‖X̃(ΔWᵀ − LR)‖_F / ‖X̃ΔWᵀ‖_F from the Gram, independently of compute_compensation's formula.
double residual(const modality& m, const Eigen::MatrixXd& l, const Eigen::MatrixXd& r) {
  const Eigen::MatrixXd rest = m.delta - r.transpose() * l.transpose();
  return std::sqrt(masquant::detail::quadratic_trace(m.gram, rest) /
                   masquant::detail::quadratic_trace(m.gram, m.delta));
}

void BM_compensation(benchmark::State& state) {
  const index_t d = state.range(0);
  const int peer = static_cast<int>(state.range(2));
  Eigen::setNbThreads(static_cast<int>(state.range(1)));
  cpu_clock = Eigen::nbThreads() == 1;
  const problem& p = get_problem(d);
  const masquant::rank_policy policy;  // ρ = 0.05, min 32
  const index_t rank = policy.resolve(d, d);
  masquant::svd_options with_residual, q1;
  with_residual.residual = masquant::residual_mode::always;
  q1.power_iterations = 1;
  const auto timed = [&](const auto& run) {  // best of `reps`, both modalities per run
    double best = 1e30;
    for (int rep = 0; rep < (d >= 4096 ? 1 : 3); ++rep) {
      const double start = now();
      for (const auto& m : p.m) benchmark::DoNotOptimize(run(m));
      best = std::min(best, now() - start);
    }
    return best;
  };
  double ours = 0, ours_resid = 0, ours_q1 = 0, peer_s = 0;
  for (auto _ : state) {
    ours =
        timed([&](const modality& m) { return masquant::compute_compensation(m.delta, m.gram); });
    ours_resid = timed([&](const modality& m) {
      return masquant::compute_compensation(m.delta, m.gram, policy, {}, with_residual);
    });
    ours_q1 = timed([&](const modality& m) {
      return masquant::compute_compensation(m.delta, m.gram, policy, {}, q1);
    });
    peer_s = timed(
        [&](const modality& m) { return peer == 0 ? textbook(m, rank) : cholesky_halko(m, rank); });
    state.SetIterationTime(ours);
  }
  double resid_ours = 0, resid_q1 = 0, resid_peer = 0;
  for (const auto& m : p.m) {
    const masquant::compensation c = masquant::compute_compensation(m.delta, m.gram);
    const masquant::compensation c1 =
        masquant::compute_compensation(m.delta, m.gram, policy, {}, q1);
    const factors f = peer == 0 ? textbook(m, rank) : cholesky_halko(m, rank);
    resid_ours += residual(m, c.L, c.R) / 2;
    resid_q1 += residual(m, c1.L, c1.R) / 2;
    resid_peer += residual(m, f.l, f.r) / 2;
  }
  state.counters["threads"] = Eigen::nbThreads();
  state.counters["cpu_time"] = cpu_clock ? 1 : 0;
  state.counters["rank"] = static_cast<double>(rank);
  state.counters["ours_s"] = ours;
  state.counters["ours_resid_s"] = ours_resid;
  state.counters["ours_q1_s"] = ours_q1;
  state.counters["peer_s"] = peer_s;
  state.counters["speedup"] = peer_s / ours;
  state.counters["speedup_resid"] = peer_s / ours_resid;
  state.counters["speedup_q1"] = peer_s / ours_q1;
  state.counters["resid_ours"] = resid_ours;
  state.counters["resid_peer"] = resid_peer;
  state.counters["resid_ratio"] = resid_ours / resid_peer;
  state.counters["resid_q1_ratio"] = resid_q1 / resid_peer;
  state.SetLabel(peer == 0 ? "vs textbook (eigen + BDCSVD)" : "vs Cholesky + Halko via T");
}

}  // namespace

BENCHMARK(BM_compensation)
    ->ArgNames({"d", "threads", "peer"})
    ->ArgsProduct({{1024, 2048, 4096}, {1, 2}, {0, 1}})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
