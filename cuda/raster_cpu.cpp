// Native CPU kernels for the engine's two primitives (render = A f, trace = A^T v), 3DGS and 2DGS.
//
// Mirrors gs_core/engine/torch_backend.py (the readable oracle) and gsplat's rasterizer:
//   alpha = min(0.999, o * exp(-sigma)), skipped when sigma < 0 or alpha < 1/255; a pixel stops
//   before the Gaussian that would take its transmittance to <= 1e-4; w = alpha * T.
//
// Layout: OpenMP over 16x16 tiles (dynamic schedule). Inside a tile the loop is Gaussian-outer and
// pixel-inner so the compiler vectorises alpha/transmittance across the tile's pixels
// (`#pragma omp simd`, a polynomial exp instead of libm's). Pixels with a non-zero weight are
// compacted so the per-channel work is proportional to the pairs that really blend.
//
// Trace is race-free without atomics: each (tile, Gaussian) intersection owns a row of a scratch
// buffer, filled in parallel over tiles, then summed per Gaussian with each thread owning the
// Gaussians with id % threads == thread. Label traces emit (gaussian, label, weight) entries that
// are bucketed by Gaussian and reduced to a top-k histogram.

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int CHUNK = 256;  // pixels processed together (one full 16x16 tile)
constexpr float ALPHA_MAX = 0.999f;
constexpr float ALPHA_MIN = 1.0f / 255.0f;
constexpr float T_MIN = 1e-4f;

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// exp(x) for x <= 0 to ~1 ulp (Cephes' expf polynomial): vectorisable, unlike libm's expf.

inline float exp_neg(float x) {
  // Clamp far below alpha_min/opacity: exp(-87) times an opacity is denormal, and denormal
  // arithmetic is ~100x slower on x86. (Ternaries, not std::max: references block vectorisation.)
  x = x > -30.0f ? x : -30.0f;
  // round to nearest by the 1.5 * 2^23 trick: floorf would block vectorisation (it may trap)
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);  // 2^n; memcpy here blocks vectorisation
}

// Geometry of one view, as produced by gs_core/engine/projection.py.
struct View {
  bool two_d;
  const float* means2d;     // [N, 2]
  const float* conics;      // [N, 3] (3DGS)
  const float* rays;        // [N, 9] row-major 3x3 ray transforms (2DGS)
  const float* opacities;   // [N]
  const int64_t* tile_offsets;  // [T + 1]
  const int32_t* flat_ids;  // [M]
  const int32_t* pix_x;     // [P] pixels in tile order
  const int32_t* pix_y;     // [P]
  const int64_t* pix_offsets;  // [T + 1]
  int64_t num_tiles;
};

View make_view(bool two_d, const torch::Tensor& means2d, const torch::Tensor& shape_params,
               const torch::Tensor& opacities, const torch::Tensor& tile_offsets,
               const torch::Tensor& flat_ids, const torch::Tensor& pix_x, const torch::Tensor& pix_y,
               const torch::Tensor& pix_offsets) {
  View v;
  v.two_d = two_d;
  v.means2d = means2d.data_ptr<float>();
  v.conics = two_d ? nullptr : shape_params.data_ptr<float>();
  v.rays = two_d ? shape_params.data_ptr<float>() : nullptr;
  v.opacities = opacities.data_ptr<float>();
  v.tile_offsets = tile_offsets.data_ptr<int64_t>();
  v.flat_ids = flat_ids.data_ptr<int32_t>();
  v.pix_x = pix_x.data_ptr<int32_t>();
  v.pix_y = pix_y.data_ptr<int32_t>();
  v.pix_offsets = pix_offsets.data_ptr<int64_t>();
  v.num_tiles = tile_offsets.size(0) - 1;
  return v;
}

constexpr int DENSE_MAX = 8;  // up to this many channels/labels: accumulate vectorised across pixels

// Per-chunk blending state, reused across Gaussians.
struct Chunk {
  alignas(64) float x[CHUNK];
  alignas(64) float y[CHUNK];
  alignas(64) float T[CHUNK];
  alignas(64) float live[CHUNK];  // 1 while the pixel has not terminated
  alignas(64) float alpha[CHUNK];
  alignas(64) float w[CHUNK];
  alignas(64) float plane[DENSE_MAX + 1][CHUNK];  // channel-major scratch for the dense paths
  int idx[CHUNK];  // compacted pixels with w > 0
  int n = 0;
};

// Alpha of Gaussian g at the chunk's pixels, then weights and transmittance update.
// Returns the number of pixels with w > 0.
inline int blend_one(const View& v, int32_t g, Chunk& c) {
  const int n = c.n;
  const float mx = v.means2d[2 * g], my = v.means2d[2 * g + 1];
  const float o = v.opacities[g];
  float* __restrict alpha = c.alpha;
  const float* __restrict xs = c.x;
  const float* __restrict ys = c.y;
  if (!v.two_d) {
    const float a = v.conics[3 * g], b = v.conics[3 * g + 1], cc = v.conics[3 * g + 2];
#pragma omp simd
    for (int p = 0; p < n; ++p) {
      const float dx = xs[p] - mx, dy = ys[p] - my;
      const float sigma = 0.5f * (a * dx * dx + cc * dy * dy) + b * dx * dy;
      const float e = o * exp_neg(-sigma);
      const float al = e < ALPHA_MAX ? e : ALPHA_MAX;
      alpha[p] = (sigma >= 0.0f && al >= ALPHA_MIN) ? al : 0.0f;
    }
  } else {
    const float* M = v.rays + 9 * g;
#pragma omp simd
    for (int p = 0; p < n; ++p) {
      const float hu0 = -M[0] + M[6] * xs[p], hu1 = -M[1] + M[7] * xs[p], hu2 = -M[2] + M[8] * xs[p];
      const float hv0 = -M[3] + M[6] * ys[p], hv1 = -M[4] + M[7] * ys[p], hv2 = -M[5] + M[8] * ys[p];
      const float c0 = hu1 * hv2 - hu2 * hv1;
      const float c1 = hu2 * hv0 - hu0 * hv2;
      const float c2 = hu0 * hv1 - hu1 * hv0;
      const float us = c0 / c2, vs = c1 / c2;
      const float s3 = us * us + vs * vs;
      const float dx = xs[p] - mx, dy = ys[p] - my;
      const float s2 = 2.0f * (dx * dx + dy * dy);
      float sigma = 0.5f * (s3 < s2 ? s3 : s2);
      const bool ok = (s3 == s3) && c2 != 0.0f;  // NaN (degenerate ray) -> skip, as the oracle
      sigma = ok ? sigma : -1.0f;
      const float e = o * exp_neg(-sigma);
      const float al = e < ALPHA_MAX ? e : ALPHA_MAX;
      alpha[p] = (sigma >= 0.0f && al >= ALPHA_MIN) ? al : 0.0f;
    }
  }
  float* __restrict T = c.T;
  float* __restrict live = c.live;
  float* __restrict w = c.w;
  int nonzero = 0;
#pragma omp simd reduction(+ : nonzero)
  for (int p = 0; p < n; ++p) {
    float al = alpha[p] * live[p];
    const float next_T = T[p] * (1.0f - al);
    const bool stop = al > 0.0f && next_T <= T_MIN;
    live[p] = stop ? 0.0f : live[p];
    al = stop ? 0.0f : al;
    alpha[p] = al;
    w[p] = al * T[p];
    T[p] = al > 0.0f ? next_T : T[p];
    nonzero += al > 0.0f;
  }
  return nonzero;
}

// Positions of the chunk's pixels with w > 0 into c.idx; returns how many.
inline int compact(Chunk& c) {
  int cnt = 0;
  for (int p = 0; p < c.n; ++p) {
    c.idx[cnt] = p;
    cnt += c.w[p] > 0.0f;
  }
  return cnt;
}

// sum_p w[p]^power * plane[p] over the chunk (vectorised).
inline float weighted_dot(const Chunk& c, const float* __restrict plane, int64_t power) {
  float s = 0.0f;
  const float* __restrict w = c.w;
  if (power == 2) {
#pragma omp simd reduction(+ : s)
    for (int p = 0; p < c.n; ++p) s += w[p] * w[p] * plane[p];
  } else {
#pragma omp simd reduction(+ : s)
    for (int p = 0; p < c.n; ++p) s += w[p] * plane[p];
  }
  return s;
}

inline float weight_total(const Chunk& c, int64_t power) {
  float s = 0.0f;
  const float* __restrict w = c.w;
  if (power == 2) {
#pragma omp simd reduction(+ : s)
    for (int p = 0; p < c.n; ++p) s += w[p] * w[p];
  } else {
#pragma omp simd reduction(+ : s)
    for (int p = 0; p < c.n; ++p) s += w[p];
  }
  return s;
}

inline float alpha_total(const Chunk& c) {
  float s = 0.0f;
  const float* __restrict a = c.alpha;
#pragma omp simd reduction(+ : s)
  for (int p = 0; p < c.n; ++p) s += a[p];
  return s;
}

// Run the blend over tiles [tile_begin, tile_end) in parallel. For each chunk of a tile's pixels:
// on_begin(chunk, base), then on_gaussian(isect, g, chunk, base, nonzero) for each Gaussian that
// contributes, then on_end(chunk, base). Rows of the chunk are base .. base + chunk.n - 1.
template <typename OnBegin, typename OnGaussian, typename OnEnd>
void for_each_tile(const View& v, int64_t tile_begin, int64_t tile_end, OnBegin on_begin,
                   OnGaussian on_gaussian, OnEnd on_end) {
#pragma omp parallel
  {
    Chunk c;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      const int64_t g_begin = v.tile_offsets[t], g_end = v.tile_offsets[t + 1];
      for (int64_t base = v.pix_offsets[t]; base < v.pix_offsets[t + 1]; base += CHUNK) {
        c.n = static_cast<int>(std::min<int64_t>(CHUNK, v.pix_offsets[t + 1] - base));
        for (int p = 0; p < c.n; ++p) {
          c.x[p] = static_cast<float>(v.pix_x[base + p]) + 0.5f;
          c.y[p] = static_cast<float>(v.pix_y[base + p]) + 0.5f;
          c.T[p] = 1.0f;
          c.live[p] = 1.0f;
        }
        on_begin(c, base);
        int64_t since_check = 0;
        for (int64_t i = g_begin; i < g_end; ++i) {
          const int32_t g = v.flat_ids[i];
          const int nonzero = blend_one(v, g, c);
          if (nonzero) on_gaussian(i, g, c, base, nonzero);
          if (++since_check == 32) {  // whole chunk terminated: the rest is hidden
            since_check = 0;
            float any = 0.0f;
            for (int p = 0; p < c.n; ++p) any += c.live[p];
            if (any == 0.0f) break;
          }
        }
        on_end(c, base);
      }
    }
  }
}

}  // namespace

// Render features [N, D] at the pixels (tile order) -> features [P, D], alpha [P], depth [P].
std::vector<torch::Tensor> render_forward(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                          torch::Tensor opacities, torch::Tensor depths,
                                          torch::Tensor tile_offsets, torch::Tensor flat_ids,
                                          torch::Tensor pix_x, torch::Tensor pix_y,
                                          torch::Tensor pix_offsets, torch::Tensor features) {
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           pix_offsets);
  const int64_t P = pix_x.size(0), D = features.size(1);
  auto out = torch::zeros({P, D}, features.options());
  auto alpha_out = torch::zeros({P}, features.options());
  auto depth_out = torch::zeros({P}, features.options());
  float* o = out.data_ptr<float>();
  float* ao = alpha_out.data_ptr<float>();
  float* dout = depth_out.data_ptr<float>();
  const float* f = features.data_ptr<float>();
  const float* z = depths.data_ptr<float>();
  const bool dense = D <= DENSE_MAX;  // accumulate channel-major in the chunk, across pixels
  for_each_tile(
      v, 0, v.num_tiles,
      [&](Chunk& c, int64_t) {
        if (dense)
          for (int64_t d = 0; d <= D; ++d) std::fill(c.plane[d], c.plane[d] + c.n, 0.0f);
      },
      [&](int64_t, int32_t g, Chunk& c, int64_t base, int) {
        const float* fg = f + static_cast<int64_t>(g) * D;
        const float zg = z[g];
        const float* __restrict w = c.w;
        if (dense) {
          for (int64_t d = 0; d < D; ++d) {
            float* __restrict pl = c.plane[d];
            const float fd = fg[d];
#pragma omp simd
            for (int p = 0; p < c.n; ++p) pl[p] += w[p] * fd;
          }
          float* __restrict pz = c.plane[D];
#pragma omp simd
          for (int p = 0; p < c.n; ++p) pz[p] += w[p] * zg;
          return;
        }
        const int cnt = compact(c);
        for (int k = 0; k < cnt; ++k) {
          const int p = c.idx[k];
          const float wp = w[p];
          float* op = o + (base + p) * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) op[d] += wp * fg[d];
          dout[base + p] += wp * zg;
        }
      },
      [&](Chunk& c, int64_t base) {
        for (int p = 0; p < c.n; ++p) ao[base + p] = 1.0f - c.T[p];
        if (dense) {
          for (int p = 0; p < c.n; ++p) {
            for (int64_t d = 0; d < D; ++d) o[(base + p) * D + d] = c.plane[d][p];
            dout[base + p] = c.plane[D][p];
          }
        }
      });
  return {out, alpha_out, depth_out};
}

// Trace values [P, D] (tile order) onto the Gaussians with weight w^power.
// Returns weighted_sum [N, D], weight_sum [N], alpha_sum [N], hits [N] (int32).
std::vector<torch::Tensor> trace_dense(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                       torch::Tensor opacities, torch::Tensor tile_offsets,
                                       torch::Tensor flat_ids, torch::Tensor pix_x, torch::Tensor pix_y,
                                       torch::Tensor pix_offsets, torch::Tensor values, int64_t power,
                                       int64_t scratch_bytes) {
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           pix_offsets);
  const int64_t N = means2d.size(0), D = values.size(1);
  const int64_t M = flat_ids.size(0);
  auto fopts = values.options();
  auto acc = torch::zeros({N, D}, fopts);
  auto wsum = torch::zeros({N}, fopts);
  auto asum = torch::zeros({N}, fopts);
  auto hits = torch::zeros({N}, fopts.dtype(torch::kInt32));
  float* accp = acc.data_ptr<float>();
  float* wsp = wsum.data_ptr<float>();
  float* asp = asum.data_ptr<float>();
  int32_t* hp = hits.data_ptr<int32_t>();
  const float* val = values.data_ptr<float>();
  const int32_t* ids = v.flat_ids;
  const bool dense = D <= DENSE_MAX;

  // Per-intersection scalars: [M] each. Per-intersection D-vectors: batched over tiles so the
  // scratch stays under `scratch_bytes`.
  std::vector<float> w_isect(M, 0.0f), a_isect(M, 0.0f);
  std::vector<int32_t> h_isect(M, 0);
  const int64_t rows_cap = std::max<int64_t>(1, scratch_bytes / (4 * std::max<int64_t>(D, 1)));
  std::vector<float> buf;
  int64_t t0 = 0;
  while (t0 < v.num_tiles) {
    int64_t t1 = t0 + 1;
    while (t1 < v.num_tiles && v.tile_offsets[t1 + 1] - v.tile_offsets[t0] <= rows_cap) ++t1;
    const int64_t r0 = v.tile_offsets[t0], rows = v.tile_offsets[t1] - r0;
    buf.assign(rows * D, 0.0f);
    float* b = buf.data();
    for_each_tile(
        v, t0, t1,
        [&](Chunk& c, int64_t base) {
          if (dense)  // values channel-major for vectorised dot products
            for (int p = 0; p < c.n; ++p)
              for (int64_t d = 0; d < D; ++d) c.plane[d][p] = val[(base + p) * D + d];
        },
        [&](int64_t i, int32_t, Chunk& c, int64_t base, int nonzero) {
          float* bi = b + (i - r0) * D;
          w_isect[i] += weight_total(c, power);
          a_isect[i] += alpha_total(c);
          h_isect[i] += nonzero;
          if (dense) {
            for (int64_t d = 0; d < D; ++d) bi[d] += weighted_dot(c, c.plane[d], power);
            return;
          }
          const int cnt = compact(c);
          for (int k = 0; k < cnt; ++k) {
            const int p = c.idx[k];
            const float wk = power == 2 ? c.w[p] * c.w[p] : c.w[p];
            const float* vp = val + (base + p) * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) bi[d] += wk * vp[d];
          }
        },
        [](Chunk&, int64_t) {});
    // Reduce rows into their Gaussians; thread k owns Gaussians with id % threads == k.
#pragma omp parallel
    {
      const int nt = num_threads(), me = thread_id();
      for (int64_t r = 0; r < rows; ++r) {
        const int32_t g = ids[r0 + r];
        if (g % nt != me) continue;
        float* ag = accp + static_cast<int64_t>(g) * D;
        const float* br = b + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) ag[d] += br[d];
      }
    }
    t0 = t1;
  }
  for (int64_t i = 0; i < M; ++i) {
    const int32_t g = ids[i];
    wsp[g] += w_isect[i];
    asp[g] += a_isect[i];
    hp[g] += h_isect[i];
  }
  return {acc, wsum, asum, hits};
}

namespace {
struct Entry {
  int32_t gaussian;
  int32_t label;
  float weight;
};
}  // namespace

// Trace an integer label map [P] (tile order, all labels >= 0) into a per-Gaussian top-k histogram.
// Returns labels [N, k] (int32, -1 = empty), weights [N, k], weight_sum [N], alpha_sum [N], hits [N].
std::vector<torch::Tensor> trace_labels(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                        torch::Tensor opacities, torch::Tensor tile_offsets,
                                        torch::Tensor flat_ids, torch::Tensor pix_x, torch::Tensor pix_y,
                                        torch::Tensor pix_offsets, torch::Tensor labels, int64_t power,
                                        int64_t top_k) {
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           pix_offsets);
  const int64_t N = means2d.size(0), M = flat_ids.size(0);
  const int32_t* lab = labels.data_ptr<int32_t>();
  auto fopts = means2d.options();
  auto out_labels = torch::full({N, top_k}, -1, fopts.dtype(torch::kInt32));
  auto out_weights = torch::zeros({N, top_k}, fopts);
  auto wsum = torch::zeros({N}, fopts);
  auto asum = torch::zeros({N}, fopts);
  auto hits = torch::zeros({N}, fopts.dtype(torch::kInt32));

  std::vector<float> w_isect(M, 0.0f), a_isect(M, 0.0f);
  std::vector<int32_t> h_isect(M, 0);
  std::vector<std::vector<Entry>> per_thread(num_threads());

  // Tile-local label table per thread: each chunk maps its pixels' labels to slots 0..L-1.
  struct Local {
    int32_t uniq[CHUNK];
    int slot[CHUNK];
    float acc[CHUNK];
    int L = 0;
  };
  std::vector<Local> locals(num_threads());
  for_each_tile(
      v, 0, v.num_tiles,
      [&](Chunk& c, int64_t base) {
        Local& loc = locals[thread_id()];
        std::copy(lab + base, lab + base + c.n, loc.uniq);
        std::sort(loc.uniq, loc.uniq + c.n);
        loc.L = static_cast<int>(std::unique(loc.uniq, loc.uniq + c.n) - loc.uniq);
        for (int p = 0; p < c.n; ++p)
          loc.slot[p] = static_cast<int>(std::lower_bound(loc.uniq, loc.uniq + loc.L, lab[base + p]) - loc.uniq);
        if (loc.L <= DENSE_MAX)  // indicator planes for vectorised per-label sums
          for (int l = 0; l < loc.L; ++l)
            for (int p = 0; p < c.n; ++p) c.plane[l][p] = loc.slot[p] == l ? 1.0f : 0.0f;
      },
      [&](int64_t i, int32_t g, Chunk& c, int64_t, int nonzero) {
        Local& loc = locals[thread_id()];
        std::vector<Entry>& out = per_thread[thread_id()];
        w_isect[i] += weight_total(c, power);
        a_isect[i] += alpha_total(c);
        h_isect[i] += nonzero;
        if (loc.L <= DENSE_MAX) {
          for (int l = 0; l < loc.L; ++l) loc.acc[l] = weighted_dot(c, c.plane[l], power);
        } else {
          std::fill(loc.acc, loc.acc + loc.L, 0.0f);
          const int cnt = compact(c);
          for (int k = 0; k < cnt; ++k) {
            const int p = c.idx[k];
            loc.acc[loc.slot[p]] += power == 2 ? c.w[p] * c.w[p] : c.w[p];
          }
        }
        for (int l = 0; l < loc.L; ++l)
          if (loc.acc[l] > 0.0f) out.push_back({g, loc.uniq[l], loc.acc[l]});
      },
      [](Chunk&, int64_t) {});

  float* wsp = wsum.data_ptr<float>();
  float* asp = asum.data_ptr<float>();
  int32_t* hp = hits.data_ptr<int32_t>();
  for (int64_t i = 0; i < M; ++i) {
    const int32_t g = v.flat_ids[i];
    wsp[g] += w_isect[i];
    asp[g] += a_isect[i];
    hp[g] += h_isect[i];
  }

  // Bucket entries by Gaussian (counting sort), then reduce each bucket to its top-k labels.
  std::vector<int64_t> start(N + 1, 0);
  for (const auto& vec : per_thread)
    for (const Entry& e : vec) ++start[e.gaussian + 1];
  for (int64_t g = 0; g < N; ++g) start[g + 1] += start[g];
  std::vector<Entry> bucket(start[N]);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (const auto& vec : per_thread)
      for (const Entry& e : vec) bucket[fill[e.gaussian]++] = e;
  }
  per_thread.clear();
  int32_t* ol = out_labels.data_ptr<int32_t>();
  float* ow = out_weights.data_ptr<float>();
#pragma omp parallel for schedule(dynamic, 1024)
  for (int64_t g = 0; g < N; ++g) {
    Entry* b = bucket.data() + start[g];
    const int64_t n = start[g + 1] - start[g];
    if (n == 0) continue;
    std::sort(b, b + n, [](const Entry& a, const Entry& c) { return a.label < c.label; });
    int64_t m = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (m > 0 && b[m - 1].label == b[j].label) b[m - 1].weight += b[j].weight;
      else b[m++] = b[j];
    }
    const int64_t k = std::min<int64_t>(top_k, m);
    std::partial_sort(b, b + k, b + m, [](const Entry& a, const Entry& c) {
      return a.weight > c.weight || (a.weight == c.weight && a.label < c.label);
    });
    for (int64_t j = 0; j < k; ++j) {
      ol[g * top_k + j] = b[j].label;
      ow[g * top_k + j] = b[j].weight;
    }
  }
  return {out_labels, out_weights, wsum, asum, hits};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("render_forward", &render_forward, "render features at pixels (tile order)");
  m.def("trace_dense", &trace_dense, "trace a D-dim pixel signal onto Gaussians");
  m.def("trace_labels", &trace_labels, "trace an integer label map into top-k histograms");
  m.def("num_threads", &num_threads, "OpenMP threads");
}
