// Native CPU kernels for the engine's two primitives (render = A f, trace = A^T v), 3DGS and 2DGS.
//
// Mirrors gs_core/engine/torch_backend.py (the readable oracle) and gsplat's rasterizer:
//   alpha = min(0.999, o * exp(-sigma)), skipped when sigma < 0 or alpha < 1/255; a pixel stops
//   before the Gaussian that would take its transmittance to <= 1e-4; w = alpha * T.
//
// Layout: OpenMP over 16x16 tiles (dynamic schedule). Inside a tile the loop is Gaussian-outer and
// pixel-inner, vectorised across pixels (the `vec` code below: one source for every vector width,
// a polynomial exp2 instead of libm's exp), with alpha, transmittance and the per-Gaussian sums fused in
// one pass. Without OpenMP (Apple Clang) everything runs on one thread.
//
// Culling, exact (the result is the same as evaluating every pixel): a tile's pixels are sorted by
// row and cut into blocks of 16 (one AVX-512 vector, two AVX2 / four SSE2 or NEON ones). Each 3DGS Gaussian carries the pixel rows and
// columns where its alpha can reach 1/255 (the ellipse sigma <= log(255 o), widened by a bound on
// float rounding). A listed Gaussian whose columns miss the tile is skipped; otherwise only the
// blocks of its rows are evaluated, and of those only blocks with a pixel still blending. On the
// garden benchmark the row and column reach keep half of the listed pixel-Gaussian pairs (before
// the live-block skip). Where a vector is narrower than a block (AVX2, SSE2, NEON), the halves of
// the blocks whose columns a Gaussian cannot reach are skipped as well (decided once per Gaussian).
// 2DGS Gaussians are evaluated on every live block. (Blocks of 8 with
// per-half-row column culling evaluate 27% fewer pixels but ran 25% slower on AVX-512: the
// per-block bookkeeping doubles.)
//
// Pixels arrive in the caller's order with `order` [P] listing them tile by tile (row-sorted in a
// tile); outputs are written straight to the caller's rows and inputs read from them, so there is
// no gather or scatter copy of [P, D] images.
//
// Channels: up to 8, accumulated channel-major across the chunk's pixels (vectorised). More: the
// pixels a Gaussian blends into are compacted (AVX-512 compress, an AVX2 permute table, else a
// branch-free scalar loop), then renders of
// up to 32 channels accumulate in an L1-sized chunk buffer, wider renders and all traces sum each
// output row in registers, block by block of channels, and write it once (a sparse matrix
// product; see `weighted_rows`).
//
// Trace is race-free without atomics: each (tile, Gaussian) intersection owns a row of a scratch
// buffer, filled in parallel over tiles (stored on first touch, so never zero-filled), then summed
// per Gaussian with each thread owning a contiguous range of Gaussian ids. Label traces emit
// (gaussian, label, weight) entries per chunk of pixels that are bucketed by Gaussian, chunks in tile
// order, and reduced to a top-k histogram; both are bitwise the same on any thread count.

// ATen and torch's pybind11 glue, not <torch/extension.h>: the whole C++ frontend (autograd, nn,
// optim) is not used here and parsing it took a third of each build's time.
#include <ATen/ATen.h>
#include <torch/python.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int TILE = 16;     // tile side in pixels, as gs_core.engine.projection.TILE_SIZE
constexpr int CHUNK = 256;   // pixels processed together (one full tile)
constexpr float ALPHA_MAX = 0.999f;
constexpr float ALPHA_MIN = 1.0f / 255.0f;
constexpr float T_MIN = 1e-4f;
constexpr int DENSE_MAX = 8;  // up to this many channels/labels: accumulate vectorised across pixels
constexpr int LANES = 16;     // pixels per block: one AVX-512 vector, two AVX2 ones, four SSE2 / NEON ones

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Threads of the current parallel region (1 outside one).
int num_threads_in_team() {
#ifdef _OPENMP
  return omp_get_num_threads();
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

// ---- the vector code: written once, for a width fixed at compile time ------------------------------
//
// `vf` is W floats and `vi` W int32 lanes (GCC/Clang vector extensions), with W chosen by the target:
// 16 (AVX-512), 8 (AVX2), 4 (SSE2, NEON, or anything else: the compiler lowers generic vectors to
// what the target has). Kernels handle pixels in blocks of LANES = 16 whatever W is (LANES / W
// vectors a block), so culling, block bookkeeping, and every per-lane sum and its order are the
// same in every build. Builds round alike, except that madd is one fused instruction only where the
// target has FMA (AVX2, AVX-512, AArch64; `FUSED`, exported as the module's `fused_madd`).
// (GS_CORE_VECTOR_WIDTH=4 or 8 forces a narrower width than the target's, to check that results do
// not depend on it.)
#if defined(GS_CORE_VECTOR_WIDTH)
#define GS_VW GS_CORE_VECTOR_WIDTH
#elif defined(__AVX512F__)
#define GS_VW 16
#elif defined(__AVX__)
#define GS_VW 8
#else
#define GS_VW 4
#endif
// which intrinsics implement the width: x86 with 512-, 256- or 128-bit vectors, AArch64's NEON, or none
#if GS_VW == 16 && defined(__AVX512F__)
#define GS_X86_512 1
#elif GS_VW == 8 && defined(__AVX__)
#define GS_X86_256 1
#elif GS_VW == 4 && defined(__SSE2__)
#define GS_X86_128 1
#elif GS_VW == 4 && defined(__ARM_NEON) && defined(__aarch64__)
#define GS_NEON_128 1
#endif
#ifndef GS_X86_512
#define GS_X86_512 0
#endif
#ifndef GS_X86_256
#define GS_X86_256 0
#endif
#ifndef GS_X86_128
#define GS_X86_128 0
#endif
#ifndef GS_NEON_128
#define GS_NEON_128 0
#endif
namespace vec {
constexpr int W = GS_VW;
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
constexpr bool FUSED = true;
#else
constexpr bool FUSED = false;
#endif
static_assert(LANES % W == 0, "a block is whole vectors");
constexpr int PER_BLOCK = LANES / W;

typedef float vf __attribute__((vector_size(4 * W)));
typedef int32_t vi __attribute__((vector_size(4 * W)));  // comparisons give -1 (true) / 0 lanes

inline vf load(const float* p) {  // (memcpy: no alignment assumed, one plain load)
  vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline vi load(const int32_t* p) {
  vi v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
inline void store(int32_t* p, vi v) { __builtin_memcpy(p, &v, sizeof v); }
inline vf splat(float x) { return vf{} + x; }
inline vi splat(int32_t x) { return vi{} + x; }
inline vf bits_as_float(vi v) { return reinterpret_cast<vf>(v); }
inline vi float_bits(vf v) { return reinterpret_cast<vi>(v); }
// a where m, else b (bitwise: one vpternlogd on AVX-512, a blend elsewhere)
inline vf select(vi m, vf a, vf b) {
#if GS_X86_256
  return reinterpret_cast<vf>(_mm256_blendv_ps(reinterpret_cast<__m256>(b), reinterpret_cast<__m256>(a),
                                               reinterpret_cast<__m256>(m)));
#else
  return bits_as_float((float_bits(a) & m) | (float_bits(b) & ~m));
#endif
}
inline vi select(vi m, vi a, vi b) { return (a & m) | (b & ~m); }
// a > b ? a : b and a < b ? a : b per lane (b where either is NaN): x86's max/min instructions are
// exactly these; elsewhere a compare and a select.
inline vf max_or(vf a, vf b) {
#if GS_X86_512  // (the maskz form: GCC 12 warns about the plain one's undefined passthrough)
  return reinterpret_cast<vf>(_mm512_maskz_max_ps(0xFFFF, reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b)));
#elif GS_X86_256
  return reinterpret_cast<vf>(_mm256_max_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b)));
#elif GS_X86_128
  return reinterpret_cast<vf>(_mm_max_ps(reinterpret_cast<__m128>(a), reinterpret_cast<__m128>(b)));
#else
  return select(a > b, a, b);
#endif
}
inline vf min_or(vf a, vf b) {
#if GS_X86_512
  return reinterpret_cast<vf>(_mm512_maskz_min_ps(0xFFFF, reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b)));
#elif GS_X86_256
  return reinterpret_cast<vf>(_mm256_min_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b)));
#elif GS_X86_128
  return reinterpret_cast<vf>(_mm_min_ps(reinterpret_cast<__m128>(a), reinterpret_cast<__m128>(b)));
#else
  return select(a < b, a, b);
#endif
}
inline vf where(vi m, vf a) { return bits_as_float(float_bits(a) & m); }  // a where m, else +0
// x rounded to the nearest integer, ties to even, for |x| <= 2^22: one instruction where the target
// has it, else the 1.5 * 2^23 trick (the same result).
inline vf round_nearest(vf x) {
#if GS_X86_512
  return reinterpret_cast<vf>(_mm512_roundscale_ps(reinterpret_cast<__m512>(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif GS_X86_256
  return reinterpret_cast<vf>(_mm256_round_ps(reinterpret_cast<__m256>(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif GS_X86_128 && defined(__SSE4_1__)
  return reinterpret_cast<vf>(_mm_round_ps(reinterpret_cast<__m128>(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif GS_NEON_128
  return reinterpret_cast<vf>(vrndnq_f32(reinterpret_cast<float32x4_t>(x)));
#else
  return (x + splat(12582912.0f)) - splat(12582912.0f);
#endif
}

// a * b + c per lane: one rounding where the target has FMA, two elsewhere (the build is
// -ffp-contract=off, so the compiler fuses nothing by itself and every build rounds as written).
inline vf madd(vf a, vf b, vf c) {
#if GS_X86_512
  return reinterpret_cast<vf>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                              reinterpret_cast<__m512>(c)));
#elif GS_X86_256 && defined(__FMA__)
  return reinterpret_cast<vf>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b),
                                              reinterpret_cast<__m256>(c)));
#elif GS_X86_128 && defined(__FMA__)
  return reinterpret_cast<vf>(_mm_fmadd_ps(reinterpret_cast<__m128>(a), reinterpret_cast<__m128>(b),
                                           reinterpret_cast<__m128>(c)));
#elif GS_NEON_128 && defined(__ARM_FEATURE_FMA)
  return reinterpret_cast<vf>(vfmaq_f32(reinterpret_cast<float32x4_t>(c), reinterpret_cast<float32x4_t>(a),
                                        reinterpret_cast<float32x4_t>(b)));
#else
  static_assert(!FUSED, "a fused target without its vector FMA here would round unlike its scalar madd");
  return a * b + c;
#endif
}

// Bit j set where lane j of the mask m is set.
inline uint32_t mask_bits(vi m) {
#if GS_X86_512
  return _mm512_cmplt_epi32_mask(reinterpret_cast<__m512i>(m), _mm512_setzero_si512());
#elif GS_X86_256
  return static_cast<uint32_t>(_mm256_movemask_ps(reinterpret_cast<__m256>(m)));
#elif GS_X86_128
  return static_cast<uint32_t>(_mm_movemask_ps(reinterpret_cast<__m128>(m)));
#elif GS_NEON_128
  const uint32x4_t weight = {1, 2, 4, 8};
  return vaddvq_u32(vandq_u32(reinterpret_cast<uint32x4_t>(m), weight));
#else
  uint32_t bits = 0;
  for (int j = 0; j < W; ++j) bits |= static_cast<uint32_t>(m[j] != 0) << j;
  return bits;
#endif
}

// The sum of lanes[0..LANES), in the same order in every build.
inline float lane_sum(const vf* lanes) {
  alignas(64) float l[LANES];
  for (int h = 0; h < PER_BLOCK; ++h) store(l + h * W, lanes[h]);
  // pairwise, lane j with lane j + 8, then + 4, + 2, + 1: four dependent adds instead of sixteen
  float t[8];
  for (int j = 0; j < 8; ++j) t[j] = l[j] + l[j + 8];
  for (int j = 0; j < 4; ++j) t[j] = t[j] + t[j + 4];
  for (int j = 0; j < 2; ++j) t[j] = t[j] + t[j + 2];
  return t[0] + t[1];
}
}  // namespace vec

using vec::vf;
using vec::vi;
using vec::W;
using vec::splat;

// Scalar a * b + c, rounded as vec::madd rounds in this build.
inline float madd(float a, float b, float c) {
  if constexpr (vec::FUSED) return __builtin_fmaf(a, b, c);
  else return a * b + c;
}

// 2^x for x <= 0 to ~3 ulp, per lane (libm's expf does not vectorise): 2^n 2^r with n = round(x)
// and r = x - n (exact) in [-1/2, 1/2], 2^r by a degree-5 polynomial fitted for relative error.
// The kernels scale sigma by -log2(e) before it (neg_sigma_log2), so exp(-sigma) costs no
// Cody-Waite reduction.
inline vf exp2_neg(vf x) {
  // Clamp far below alpha_min/opacity: 2^-126 times an opacity is denormal, and denormal
  // arithmetic is ~100x slower on x86. (NaN becomes -44, as the scalar `x > -44 ? x : -44`.)
  x = vec::max_or(x, splat(-44.0f));
  const vf n = vec::round_nearest(x);
  const vf r = x - n;
  vf p = splat(1.3264714507386088e-3f);
  p = vec::madd(p, r, splat(9.671513922512531e-3f));
  p = vec::madd(p, r, splat(5.550733953714371e-2f));
  p = vec::madd(p, r, splat(2.4022242426872253e-1f));
  p = vec::madd(p, r, splat(6.931470036506653e-1f));
  p = vec::madd(p, r, splat(1.0f));
  // p 2^n by adding n to p's exponent: p is in [2^-1/2, 2^1/2] and n >= -44, so p 2^n is normal and
  // this is the exact product
  return vec::bits_as_float(vec::float_bits(p) + (__builtin_convertvector(n, vi) << 23));
}

constexpr float LOG2E = 1.44269504088896341f;

// Pixels a Gaussian can reach, per axis: indices lo..hi inclusive (empty when lo > hi).
struct Reach {
  int16_t lo, hi;
};
constexpr int REACH_LIMIT = 30000;  // images wider or taller than this are not culled (int16 indices)

// Per-Gaussian parameters packed in one aligned record, so the blend touches one cache line per
// listed Gaussian instead of five scattered arrays (tile lists visit Gaussians in random order):
// mean, opacity, the rows and columns where alpha can reach 1/255, then the conic (a, b, c) for
// 3DGS (S = 8 floats, 32 bytes) or the row-major ray transform (9) for 2DGS (S = 16).
template <int S>
struct alignas(S * 4) Rec {
  float mx, my, o;
  Reach rows, cols;
  float shape[S - 5];
};
static_assert(sizeof(Rec<8>) == 32 && sizeof(Rec<16>) == 64, "records are one aligned block");

// Geometry of one view, as produced by gs_core/engine/projection.py, and the pixels to blend.
struct View {
  bool two_d;
  const float* means2d;         // [N, 2]
  const float* conics;          // [N, 3] (3DGS)
  const float* rays;            // [N, 9] row-major 3x3 ray transforms (2DGS)
  const float* opacities;       // [N]
  const int64_t* tile_offsets;  // [T + 1]
  const int32_t* flat_ids;      // [M]
  const int32_t* pix_x;         // [P] caller's order
  const int32_t* pix_y;         // [P]
  const int32_t* order;         // [P] caller rows, tile by tile, row-sorted within a tile
  const int64_t* pix_offsets;   // [T + 1] tile t owns order[pix_offsets[t]:pix_offsets[t+1]]
  int64_t num_tiles;
  int64_t tiles_x;
  std::vector<Rec<8>> packed3;   // [N] 3DGS
  std::vector<Rec<16>> packed2;  // [N] 2DGS
};

// Pixel indices (centre at index + 0.5) where 3DGS Gaussian g can reach alpha >= 1/255: |dy| <=
// sqrt(2 L Sigma_yy) and |dx| <= sqrt(2 L Sigma_xx) on the ellipse sigma = L = log(255 o) (sigma =
// d^T Q d / 2 with Q the conic, Sigma = Q^-1). L is widened by a bound on the rounding of sigma in
// float (|error| < 8 eps * sum of |terms|) so culling never drops a pixel the full evaluation would
// blend.
void reach_3dgs(const View& v, int64_t g, Reach& rows, Reach& cols) {
  constexpr Reach all{std::numeric_limits<int16_t>::min(), std::numeric_limits<int16_t>::max()};
  constexpr Reach none{all.hi, all.lo};
  const double o = v.opacities[g];
  if (!(o >= ALPHA_MIN)) {  // alpha = o exp(-sigma) <= o never reaches 1/255 (also NaN)
    rows = cols = none;
    return;
  }
  rows = cols = all;
  const double a = v.conics[3 * g], b = v.conics[3 * g + 1], c = v.conics[3 * g + 2];
  const double det = a * c - b * b, mx = v.means2d[2 * g], my = v.means2d[2 * g + 1];
  if (!(det > 0.0 && a > 0.0 && c > 0.0 && std::isfinite(det) && std::isfinite(mx) && std::isfinite(my)) ||
      v.tiles_x * TILE > REACH_LIMIT || v.num_tiles / v.tiles_x * TILE > REACH_LIMIT)
    return;  // degenerate, or too big an image for int16 indices: evaluate every pixel
  double level = std::log(255.0 * o) * 1.001 + 1e-4;
  const double ex2 = 2.0 * level * c / det, ey2 = 2.0 * level * a / det;
  level += 1e-6 * (std::fabs(a) + std::fabs(b) + std::fabs(c)) * (ex2 + ey2 + (mx * mx + my * my) * 1e-6);
  const double ex = std::sqrt(2.0 * level * c / det) * 1.0001 + 1e-3;
  const double ey = std::sqrt(2.0 * level * a / det) * 1.0001 + 1e-3;
  // Centre index + 0.5 in [m - e, m + e]; clamped just outside the image (-1 .. REACH_LIMIT).
  const auto index = [](double x) {
    return static_cast<int16_t>(std::min<double>(std::max<double>(x, -1.0), REACH_LIMIT));
  };
  rows = {index(std::ceil(my - ey - 0.5)), index(std::floor(my + ey - 0.5))};
  cols = {index(std::ceil(mx - ex - 0.5)), index(std::floor(mx + ex - 0.5))};
}

View make_view(bool two_d, const torch::Tensor& means2d, const torch::Tensor& shape_params,
               const torch::Tensor& opacities, const torch::Tensor& tile_offsets,
               const torch::Tensor& flat_ids, const torch::Tensor& pix_x, const torch::Tensor& pix_y,
               const torch::Tensor& order, const torch::Tensor& pix_offsets, int64_t tiles_x) {
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
  v.order = order.data_ptr<int32_t>();
  v.pix_offsets = pix_offsets.data_ptr<int64_t>();
  v.num_tiles = tile_offsets.size(0) - 1;
  v.tiles_x = tiles_x;
  const int64_t N = means2d.size(0);
  if (two_d) v.packed2.resize(N);
  else v.packed3.resize(N);
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < N; ++g) {
    const auto fill = [&](auto& r) {
      r.mx = v.means2d[2 * g];
      r.my = v.means2d[2 * g + 1];
      r.o = v.opacities[g];
    };
    if (two_d) {  // every pixel of the tile is evaluated
      Rec<16>& r = v.packed2[g];
      fill(r);
      r.rows = r.cols = {std::numeric_limits<int16_t>::min(), std::numeric_limits<int16_t>::max()};
      for (int k = 0; k < 9; ++k) r.shape[k] = v.rays[9 * g + k];
    } else {
      Rec<8>& r = v.packed3[g];
      fill(r);
      reach_3dgs(v, g, r.rows, r.cols);
      for (int k = 0; k < 3; ++k) r.shape[k] = v.conics[3 * g + k];
    }
  }
  return v;
}

// The packed record of Gaussian g (Rec<8> for 3DGS, Rec<16> for 2DGS).
template <bool TWO_D>
inline const auto& record(const View& v, int32_t g) {
  if constexpr (TWO_D) return v.packed2[g];
  else return v.packed3[g];
}

// Parts of a block that blend_one can skip: halves (8 pixels: one or two vectors) where a vector is
// narrower than a block. (Quarters for 4-float vectors ran slower than the kernels before them on a
// loaded machine, halves no slower: with quarters more Gaussians take the skipping loop, with its
// branch per vector; see docs/benchmarks.md.)
constexpr int PART_PIXELS = W < LANES / 2 ? LANES / 2 : W;
constexpr int PARTS = LANES / PART_PIXELS;

// Per-chunk blending state, reused across Gaussians.
struct Chunk {
  alignas(64) float x[CHUNK];
  alignas(64) float y[CHUNK];
  alignas(64) float T[CHUNK];
  alignas(64) int32_t live[CHUNK];  // -1 (a lane mask) while the pixel blends, 0 once terminated (or ignored)
  alignas(64) float w[CHUNK];     // weights of the current Gaussian, valid on its Blend's blocks
  alignas(64) float plane[DENSE_MAX + 1][CHUNK];  // channel-major scratch for the dense paths
  alignas(64) int32_t row[CHUNK];  // caller's row of each chunk pixel
  alignas(64) int32_t idx[CHUNK + LANES];  // compacted pixels with w > 0 (+ slack for whole-block stores)
  // With vectors narrower than a block: the image columns the pixels of part k of every block span
  // (lo > hi: none). A full tile's block is one row, so these are the halves of its rows; blend_one
  // skips the parts out of a Gaussian's column reach.
  Reach part_cols[PARTS];
  int row_begin[TILE + 1];        // chunk pixels of tile row r: [row_begin[r], row_begin[r + 1])
  int n = 0;
  uint32_t live_blocks = 0;       // bit k: block k (pixels [k LANES, (k + 1) LANES)) has a live pixel
  int tile_x0 = 0, tile_y0 = 0;   // image column and row of the tile's first pixel
};
static_assert(CHUNK / LANES <= 32, "block masks are 32-bit");

// Bit j set where lane mask m[j] is set, for the LANES masks at m.
inline uint32_t set_lanes(const int32_t* m) {
  uint32_t bits = 0;
  for (int h = 0; h < vec::PER_BLOCK; ++h) bits |= vec::mask_bits(vec::load(m + h * W)) << (h * W);
  return bits;
}

// Calls f(first pixel of the block) for each block whose bit is set in `blocks`, in order.
template <typename F>
inline void for_each_block(uint32_t blocks, F&& f) {
  for (; blocks; blocks &= blocks - 1) f(__builtin_ctz(blocks) * LANES);
}

// Calls f(first pixel of the vector) for each vector whose bit is set in `vecs`, in order.
template <typename F>
inline void for_each_vector(uint64_t vecs, F&& f) {
  for (; vecs; vecs &= vecs - 1) f(__builtin_ctzll(vecs) * W);
}

// What blending one Gaussian into a chunk produced.
struct Blend {
  uint32_t blocks;  // blocks with a pixel of w > 0 (w is valid there; elsewhere stale)
  uint64_t vecs;    // vectors (of W pixels) with a pixel of w > 0
  int nonzero;    // pixels with w > 0
  float wsum;     // sum w^power (trace only)
  float asum;     // sum alpha (trace only)
};

// The 2DGS ray-splat intersection at pixels (x, y), gsplat's: the planes h_u = x M_2 - M_0 and
// h_v = y M_2 - M_1 (M_k the rows of the ray transform M, row-major) and their cross product
// c = h_u x h_v, whose (c0, c1) / c2 is the intersection's (u, v) on the splat. The forward's sigma
// and the backward's chain through it both start here.
struct RayHit {
  vf hu0, hu1, hu2, hv0, hv1, hv2, c0, c1, c2;
};
inline RayHit ray_hit(vf x, vf y, const float* M) {
  RayHit r;
  r.hu0 = splat(M[6]) * x - splat(M[0]);
  r.hu1 = splat(M[7]) * x - splat(M[1]);
  r.hu2 = splat(M[8]) * x - splat(M[2]);
  r.hv0 = splat(M[6]) * y - splat(M[3]);
  r.hv1 = splat(M[7]) * y - splat(M[4]);
  r.hv2 = splat(M[8]) * y - splat(M[5]);
  r.c0 = r.hu1 * r.hv2 - r.hu2 * r.hv1;
  r.c1 = r.hu2 * r.hv0 - r.hu0 * r.hv2;
  r.c2 = r.hu0 * r.hv1 - r.hu1 * r.hv0;
  return r;
}

// 2 sigma of the 2D low-pass (gsplat's 2DGS filter): 2 (dx^2 + dy^2).
inline vf low_pass_2sigma(vf dx, vf dy) { return splat(2.0f) * (dx * dx + dy * dy); }

// The conic (a, b, c) of a 3DGS Gaussian.
struct Quad {
  float a, b, c;
};

// -sigma log2(e) at pixels (x, y), for o exp(-sigma) = o exp2_neg(-sigma log2(e)) (sigma >= 0 where
// it is <= 0): the conic (3DGS: sigma = d^T Q d / 2, in the torch reference's order of operations:
// with needles the terms cancel, and two multiply-adds rounded measurably away from the reference) or
// the ray transform M (2DGS: the ray-splat intersection, or the 2D low-pass where it is smaller).
// The forward and the backward's first pass both call it, so their skip decisions are the same.
// `valid` is false for a degenerate ray (NaN), which is skipped, as the oracle does.
template <bool TWO_D>
inline vf neg_sigma_log2(vf x, vf y, float mx, float my, Quad q, const float* M, vi& valid) {
  const vf dx = x - splat(mx), dy = y - splat(my);
  if constexpr (TWO_D) {
    const RayHit r = ray_hit(x, y, M);
    const vf us = r.c0 / r.c2, vs = r.c1 / r.c2;
    const vf s3 = us * us + vs * vs;
    const vf s2 = low_pass_2sigma(dx, dy);
    valid = (s3 == s3) & (r.c2 != splat(0.0f));
    return splat(-0.5f * LOG2E) * vec::select(s3 < s2, s3, s2);
  } else {
    valid = splat(-1);
    // (a dx dx + c dy dy) / 2 as (a/2) dx dx + (c/2) dy dy: halving is exact and commutes with
    // rounding (short of subnormals), so this is bitwise the reference's order, one multiply fewer
    return splat(-LOG2E) * ((splat(0.5f * q.a) * dx * dx + splat(0.5f * q.c) * dy * dy) + splat(q.b) * dx * dy);
  }
}

// Alpha of Gaussian g at the chunk's pixels in reach, then weights and the transmittance update,
// fused in one vectorised pass. SUMS also accumulates sum w^POWER and sum alpha.
template <bool TWO_D, bool SUMS, int POWER>
inline Blend blend_one(const View& v, int32_t g, Chunk& c) {
  Blend out{0, 0, 0, 0.0f, 0.0f};
  const auto& rec = record<TWO_D>(v, g);
  int r0 = 0, r1 = TILE;
  if (!TWO_D) {  // skip Gaussians that cannot reach the tile's columns; evaluate only rows in reach
    if (rec.cols.hi < c.tile_x0 || rec.cols.lo >= c.tile_x0 + TILE) return out;
    r0 = std::max(rec.rows.lo - c.tile_y0, 0);
    r1 = std::min(rec.rows.hi - c.tile_y0 + 1, TILE);
    if (r0 >= r1) return out;  // also the never-visible
  }
  // Whole blocks of LANES pixels (a few pixels of neighbouring rows are evaluated too, which is
  // exact, just wasted). Blocks whose pixels have all terminated are skipped.
  const int b0 = c.row_begin[r0] / LANES, b1 = (c.row_begin[r1] + LANES - 1) / LANES;
  const uint32_t todo = c.live_blocks & (((b1 - b0 >= 32 ? 0u : 1u << (b1 - b0)) - 1u) << b0);
  if (!todo) return out;
  const float mx = rec.mx, my = rec.my;
  const vf o = splat(rec.o), one = splat(1.0f);
  const Quad q{rec.shape[0], rec.shape[1], rec.shape[2]};
  const float* M = rec.shape;
  // With vectors narrower than a block (not AVX-512), the parts of the blocks whose columns the
  // Gaussian cannot reach: alpha < 1/255 at all their pixels, so w = 0 and T and live stay as they
  // are, exactly what evaluating them gives; they are skipped. (Choosing per vector cost more than it
  // saved: the choice is made once per Gaussian, and the loop below is compiled twice, with and
  // without skipping.)
  constexpr uint32_t ALL_PARTS = (1u << PARTS) - 1;
  uint32_t parts = ALL_PARTS;
  if constexpr (PARTS > 1 && !TWO_D) {
    parts = 0;
    for (int k = 0; k < PARTS; ++k)
      parts |= static_cast<uint32_t>(c.part_cols[k].hi >= rec.cols.lo && c.part_cols[k].lo <= rec.cols.hi) << k;
  }
  vf lane_w[vec::PER_BLOCK] = {}, lane_a[vec::PER_BLOCK] = {};
  // The vectors h0 .. h0 + G of block blk, each stage for all G before the next stage: their
  // independent dependency chains (sigma, exp, then the transmittance) sit side by side in the
  // instruction stream, so the out-of-order core overlaps them (written one vector after the other,
  // a vector's chain filled the scheduler and left its latency exposed). Masks rather than 0/1 floats:
  // a pixel that would end (T <= T_MIN) keeps its T by a select instead of a second multiply chain.
  // Bitwise the same results as 0/1 float arithmetic (alpha, w and T; only the sign of exact zeros
  // differs, which nothing reads).
  const auto evaluate = [&](const int blk, const int h0, auto group, uint32_t& blended, uint32_t& alive) {
    constexpr int G = decltype(group)::value;
    vf ns[G], e[G], Tp[G];
    vi valid[G], lm[G];
    for (int j = 0; j < G; ++j) {
      const int p = blk + (h0 + j) * W;
      ns[j] = neg_sigma_log2<TWO_D>(vec::load(c.x + p), vec::load(c.y + p), mx, my, q, M, valid[j]);
    }
    for (int j = 0; j < G; ++j) e[j] = o * exp2_neg(ns[j]);
    for (int j = 0; j < G; ++j) {
      const int p = blk + (h0 + j) * W;
      lm[j] = vec::load(c.live + p);  // set while the pixel blends
      Tp[j] = vec::load(c.T + p);
    }
    for (int j = 0; j < G; ++j) {
      const int h = h0 + j, p = blk + h * W;
      const vi km = (ns[j] <= splat(0.0f)) & (e[j] >= splat(ALPHA_MIN)) & valid[j] & lm[j];  // blends here
      const vf al1 = vec::where(km, vec::min_or(e[j], splat(ALPHA_MAX)));
      const vf Tn = Tp[j] * (one - al1);
      const vi sm = (Tn <= splat(T_MIN)) & km;  // would end the pixel: skip it
      const vi bm = km & ~sm;                   // blends: w > 0 exactly here (T > T_MIN)
      const vf al = vec::where(bm, al1);
      const vf wp = al * Tp[j];
      const vi still = lm[j] & ~sm;
      vec::store(c.live + p, still);
      vec::store(c.w + p, wp);
      vec::store(c.T + p, vec::select(sm, Tp[j], Tn));  // Tn == T where al1 == 0
      if (SUMS) {
        lane_w[h] += POWER == 2 ? wp * wp : wp;
        lane_a[h] += al;
      }
      const uint32_t here = vec::mask_bits(bm);
      blended |= here << (h * W);
      out.vecs |= static_cast<uint64_t>(here != 0) << (p / W);
      alive |= vec::mask_bits(still) << (h * W);
    }
  };
  // vectors evaluated together: two where a block has them (AVX2: one block; SSE2/NEON: two pairs)
  constexpr int GROUP = vec::PER_BLOCK >= 2 ? 2 : 1;
  const auto blocks = [&](auto skipping) {
    for_each_block(todo, [&](const int blk) {
    uint32_t blended = 0, alive = 0;
    if constexpr (decltype(skipping)::value) {
      for (int h = 0; h < vec::PER_BLOCK; ++h) {
        if (!(parts >> (h * W / PART_PIXELS) & 1)) {
          const int p = blk + h * W;
          vec::store(c.w + p, vf{});
          alive |= vec::mask_bits(vec::load(c.live + p)) << (h * W);
          continue;
        }
        evaluate(blk, h, std::integral_constant<int, 1>{}, blended, alive);
      }
    } else {
      for (int h = 0; h < vec::PER_BLOCK; h += GROUP)
        evaluate(blk, h, std::integral_constant<int, GROUP>{}, blended, alive);
    }
    // Branch-free bookkeeping: mispredicted branches here stall the overlap of consecutive blocks.
    const int k = blk / LANES;
    out.blocks |= static_cast<uint32_t>(blended != 0) << k;
    out.nonzero += __builtin_popcount(blended);
    c.live_blocks &= ~(static_cast<uint32_t>(alive == 0) << k);
    });
  };
  if (parts == ALL_PARTS) blocks(std::false_type{});
  else blocks(std::true_type{});
  if (SUMS) {
    out.wsum = vec::lane_sum(lane_w);
    out.asum = vec::lane_sum(lane_a);
  }
  return out;
}

#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2 has no compress instruction: a table gives, per 8-bit mask, the indices of its set lanes
// packed low (4 bits each) for one cross-lane permute.
struct PackTable {
  uint32_t index[256];
  constexpr PackTable() : index() {
    for (int m = 0; m < 256; ++m)
      for (int j = 0, k = 0; j < 8; ++j)
        if (m >> j & 1) index[m] |= static_cast<uint32_t>(j) << (4 * k++);
  }
};
constexpr PackTable PACK{};

inline __m256i pack_index(uint32_t m8) {
  const __m256i shift = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(PACK.index[m8])), shift),
                          _mm256_set1_epi32(7));
}
#endif

// The pixels of `blocks` with w > 0: key[k] = map[p] (or p when map is null) and w_out[k] = w^POWER.
// Returns how many. Both outputs need LANES slots of slack: whole vectors are stored.
template <int POWER>
inline int compact(const Chunk& c, uint32_t blocks, const int32_t* map, int32_t* key, float* w_out) {
  int cnt = 0;
#if defined(__AVX512F__)
  // AVX-512 compress: a scalar branch-free loop costs as much as the blend on the dense-D paths.
  // (Register-form compress then a plain store: the memory form is microcoded on AMD Zen 4.)
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for_each_block(blocks, [&](const int blk) {
    const __m512 wv = _mm512_load_ps(c.w + blk);
    const __mmask16 m = _mm512_cmp_ps_mask(wv, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512i kv = map ? _mm512_load_si512(map + blk) : _mm512_add_epi32(lane, _mm512_set1_epi32(blk));
    const __m512 wk = POWER == 2 ? _mm512_mul_ps(wv, wv) : wv;
    _mm512_storeu_si512(key + cnt, _mm512_maskz_compress_epi32(m, kv));
    _mm512_storeu_ps(w_out + cnt, _mm512_maskz_compress_ps(m, wk));
    cnt += __builtin_popcount(m);
  });
#elif defined(__AVX2__)
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for_each_block(blocks, [&](const int blk) {
    for (int p = blk; p < blk + LANES; p += 8) {
      const __m256 wv = _mm256_load_ps(c.w + p);
      const uint32_t m = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(wv, _mm256_setzero_ps(), _CMP_GT_OQ)));
      const __m256i idx = pack_index(m);
      const __m256i kv = map ? _mm256_load_si256(reinterpret_cast<const __m256i*>(map + p))
                             : _mm256_add_epi32(lane, _mm256_set1_epi32(p));
      const __m256 wk = POWER == 2 ? _mm256_mul_ps(wv, wv) : wv;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(key + cnt), _mm256_permutevar8x32_epi32(kv, idx));
      _mm256_storeu_ps(w_out + cnt, _mm256_permutevar8x32_ps(wk, idx));
      cnt += __builtin_popcount(m);
    }
  });
#else
  for_each_block(blocks, [&](const int blk) {
    for (int p = blk; p < blk + LANES; ++p) {  // branch-free
      const float wp = c.w[p];
      key[cnt] = map ? map[p] : p;
      w_out[cnt] = POWER == 2 ? wp * wp : wp;
      cnt += wp > 0.0f;
    }
  });
#endif
  return cnt;
}

// sum_p w[p]^power * plane[p] over the pixels of `blocks` (w valid there: a Blend's blocks).
// Whole blocks, each vector into its own accumulator (a register: indexing the accumulators by a
// run-time vector number kept them in memory, a store-to-load chain per vector).
template <int POWER>
inline float weighted_dot(const Chunk& c, const float* plane, uint32_t blocks) {
  vf lane[vec::PER_BLOCK] = {};
  for_each_block(blocks, [&](const int blk) {
    for (int h = 0; h < vec::PER_BLOCK; ++h) {
      const vf w = vec::load(c.w + blk + h * W);
      lane[h] = vec::madd(POWER == 2 ? w * w : w, vec::load(plane + blk + h * W), lane[h]);
    }
  });
  return vec::lane_sum(lane);
}

// plane[p] += w[p] * value over the pixels of the vectors of `vecs`.
inline void accumulate_plane(float* plane, const Chunk& c, float value, uint64_t vecs) {
  const vf v = splat(value);
  for_each_vector(vecs, [&](const int p) { vec::store(plane + p, vec::madd(vec::load(c.w + p), v, vec::load(plane + p))); });
}

// plane d += w * values[d] for the ND planes [ND][CHUNK] at `planes`, over the pixels of the vectors
// of `vecs`: all planes in one pass (one weight load and loop step per vector, not one per plane).
template <int ND>
inline void accumulate_planes(float* planes, const Chunk& c, const float* values, uint64_t vecs) {
  vf v[ND];
  for (int d = 0; d < ND; ++d) v[d] = splat(values[d]);
  for_each_vector(vecs, [&](const int p) {
    const vf w = vec::load(c.w + p);
    for (int d = 0; d < ND; ++d)
      vec::store(planes + d * CHUNK + p, vec::madd(w, v[d], vec::load(planes + d * CHUNK + p)));
  });
}

// The same for nd planes, 1 <= nd <= DENSE_MAX + 1 (a compile-time count each).
inline void accumulate_planes(int nd, float* planes, const Chunk& c, const float* values, uint64_t vecs) {
  static_assert(DENSE_MAX == 8, "one case per plane count");
  switch (nd) {
    case 1: return accumulate_planes<1>(planes, c, values, vecs);
    case 2: return accumulate_planes<2>(planes, c, values, vecs);
    case 3: return accumulate_planes<3>(planes, c, values, vecs);
    case 4: return accumulate_planes<4>(planes, c, values, vecs);
    case 5: return accumulate_planes<5>(planes, c, values, vecs);
    case 6: return accumulate_planes<6>(planes, c, values, vecs);
    case 7: return accumulate_planes<7>(planes, c, values, vecs);
    case 8: return accumulate_planes<8>(planes, c, values, vecs);
    default: return accumulate_planes<9>(planes, c, values, vecs);  // (8 channels + depth)
  }
}

// Vector registers of the target, and how many accumulators the sparse products keep in them
// (16 fit AVX-512's 32 registers; 24 there spilled and ran 25% slower at D = 512).
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr int ACC_VECTORS = 16;
#else
constexpr int ACC_VECTORS = 12;
#endif

// dst[j] (=|+=) sum_k weight[k] * src[rows[k] * D + j] for j in [0, W NV): one block of channels
// of a sparse matrix product, summed in registers and stored once. Render uses it with rows =
// Gaussians (out[pixel] = sum_g w f[g]), trace with rows = pixels (acc[g] = sum_p w^k v[p]).
// (Explicit vectors: auto-vectorisation gathered across k here.)
template <int NV, bool ADD>
inline void weighted_rows_block(float* dst, const float* src, int64_t D, const int32_t* rows,
                                const float* weight, int m) {
  vf acc[NV];
  for (int i = 0; i < NV; ++i) acc[i] = vf{};
  for (int k = 0; k < m; ++k) {
    const float* s = src + static_cast<int64_t>(rows[k]) * D;
    const vf wk = splat(weight[k]);
    for (int i = 0; i < NV; ++i) acc[i] = vec::madd(wk, vec::load(s + W * i), acc[i]);
  }
  for (int i = 0; i < NV; ++i) vec::store(dst + W * i, ADD ? vec::load(dst + W * i) + acc[i] : acc[i]);
}

// weighted_rows_block with NV = nv (1 <= nv < ACC_VECTORS) chosen at run time.
template <bool ADD, int NV = 1>
inline void weighted_rows_tail(int nv, float* dst, const float* src, int64_t D, const int32_t* rows,
                               const float* weight, int m) {
  if constexpr (NV < ACC_VECTORS) {
    if (nv == NV) return weighted_rows_block<NV, ADD>(dst, src, D, rows, weight, m);
    weighted_rows_tail<ADD, NV + 1>(nv, dst, src, D, rows, weight, m);
  }
}

// rows[idx[k]] += weight[k] * src for k < m, rows of W NV floats (src is held in registers).
template <int NV>
inline void add_scaled_rows(float* rows, const int32_t* idx, const float* weight, int m, const float* src) {
  vf s[NV];
  for (int i = 0; i < NV; ++i) s[i] = vec::load(src + W * i);
  for (int k = 0; k < m; ++k) {
    float* r = rows + static_cast<int64_t>(idx[k]) * (W * NV);
    const vf wk = splat(weight[k]);
    for (int i = 0; i < NV; ++i) vec::store(r + W * i, vec::madd(wk, s[i], vec::load(r + W * i)));
  }
}

// weighted_rows_block over channels [d0, d1): blocks of ACC_VECTORS vectors, then one block of
// the whole vectors left, then single channels. Wide blocks amortise each pair's index and weight
// over more loads. Each channel's sum runs over k in order whatever the blocking, so every build
// sums alike.
template <bool ADD>
inline void weighted_rows(float* dst, const float* src, int64_t D, int64_t d0, int64_t d1,
                          const int32_t* rows, const float* weight, int m) {
  int64_t d = d0;
  for (; d + W * ACC_VECTORS <= d1; d += W * ACC_VECTORS)
    weighted_rows_block<ACC_VECTORS, ADD>(dst + d, src + d, D, rows, weight, m);
  if (const int nv = static_cast<int>((d1 - d) / W)) {
    weighted_rows_tail<ADD>(nv, dst + d, src + d, D, rows, weight, m);
    d += W * nv;
  }
  for (; d < d1; ++d) {
    float s = 0.0f;
    for (int k = 0; k < m; ++k) s = madd(weight[k], src[static_cast<int64_t>(rows[k]) * D + d], s);
    dst[d] = ADD ? dst[d] + s : s;
  }
}

constexpr int64_t CHANNEL_BLOCK = 256;  // channels per pass over a chunk: its rows' slices stay in L2

// Load the pixels [base, base + CHUNK) of tile t (at most) into the chunk: positions, caller rows,
// row starts, T = 1, all live; the last block's padding is inert (never live).
inline void load_chunk(const View& v, int64_t t, int64_t base, Chunk& c) {
  c.tile_x0 = static_cast<int>((t % v.tiles_x) * TILE);
  c.tile_y0 = static_cast<int>((t / v.tiles_x) * TILE);
  c.n = static_cast<int>(std::min<int64_t>(CHUNK, v.pix_offsets[t + 1] - base));
  int r = 0;
  for (int p = 0; p < c.n; ++p) {
    const int32_t row = v.order[base + p];
    c.row[p] = row;
    c.x[p] = static_cast<float>(v.pix_x[row]) + 0.5f;
    c.y[p] = static_cast<float>(v.pix_y[row]) + 0.5f;
    c.T[p] = 1.0f;
    c.live[p] = -1;
    const int local = v.pix_y[row] - c.tile_y0;  // rows are sorted within the tile
    while (r <= local) c.row_begin[r++] = p;
  }
  while (r <= TILE) c.row_begin[r++] = c.n;
  for (int p = c.n; p < (c.n + LANES - 1) / LANES * LANES; ++p) {  // inert padding of the last block
    c.x[p] = c.y[p] = 0.0f;
    c.T[p] = 1.0f;
    c.live[p] = 0;
  }
  if constexpr (PARTS > 1) {
    constexpr int16_t lo = std::numeric_limits<int16_t>::min(), hi = std::numeric_limits<int16_t>::max();
    for (int k = 0; k < PARTS; ++k) c.part_cols[k] = {hi, lo};
    for (int p = 0; p < c.n; ++p) {
      const int16_t x = static_cast<int16_t>(std::min<int32_t>(std::max<int32_t>(v.pix_x[c.row[p]], lo), hi));
      Reach& r = c.part_cols[(p % LANES) / PART_PIXELS];
      r = {std::min(r.lo, x), std::max(r.hi, x)};
    }
  }
}

// Run the blend over tiles [tile_begin, tile_end) in parallel. For each chunk of a tile's pixels:
// on_begin(chunk, base) (may clear `live` of pixels to ignore), then on_gaussian(isect, g, chunk,
// blend) for each Gaussian that blends into a pixel, then on_end(chunk, base). Pixel k of the chunk
// is caller row c.row[k] = order[base + k].
template <bool TWO_D, bool SUMS, int POWER, typename OnBegin, typename OnGaussian, typename OnEnd>
void for_each_tile(const View& v, int64_t tile_begin, int64_t tile_end, OnBegin on_begin,
                   OnGaussian on_gaussian, OnEnd on_end) {
#pragma omp parallel
  {
    Chunk c;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      const int64_t g_begin = v.tile_offsets[t], g_end = v.tile_offsets[t + 1];
      for (int64_t base = v.pix_offsets[t]; base < v.pix_offsets[t + 1]; base += CHUNK) {
        load_chunk(v, t, base, c);
        on_begin(c, base);
        c.live_blocks = 0;
        for (int blk = 0; blk < c.n; blk += LANES)
          if (set_lanes(c.live + blk)) c.live_blocks |= 1u << (blk / LANES);
        for (int64_t i = g_begin; i < g_end && c.live_blocks; ++i) {
          constexpr int AHEAD = 8;  // records of listed Gaussians are scattered: fetch them early
          if (i + AHEAD < g_end) __builtin_prefetch(&record<TWO_D>(v, v.flat_ids[i + AHEAD]));
          const int32_t g = v.flat_ids[i];
          const Blend bl = blend_one<TWO_D, SUMS, POWER>(v, g, c);
          if (bl.nonzero) on_gaussian(i, g, c, bl);
        }
        on_end(c, base);
      }
    }
  }
}

// Calls f(two_d, power) with both as compile-time constants.
template <typename F>
void dispatch(bool two_d, int64_t power, F&& f) {
  auto with_power = [&](auto td) {
    if (power == 2) f(td, std::integral_constant<int, 2>{});
    else f(td, std::integral_constant<int, 1>{});
  };
  if (two_d) with_power(std::true_type{});
  else with_power(std::false_type{});
}

void check_pixels(const torch::Tensor& pix_x, const torch::Tensor& order, const torch::Tensor& pix_offsets) {
  TORCH_CHECK(order.size(0) == pix_x.size(0), "order and pixels differ in length");
  TORCH_CHECK(pix_x.size(0) < std::numeric_limits<int32_t>::max(), "too many pixels for int32 rows");
  TORCH_CHECK(pix_offsets.size(0) >= 1 && pix_offsets[-1].item<int64_t>() == pix_x.size(0),
              "tile offsets do not cover the pixels");
}

}  // namespace

// Render features [N, D] at pixels (x, y) [P] -> features [P, D], alpha [P], depth [P] (caller's rows).
std::vector<torch::Tensor> render_forward(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                          torch::Tensor opacities, torch::Tensor depths,
                                          torch::Tensor tile_offsets, torch::Tensor flat_ids,
                                          torch::Tensor pix_x, torch::Tensor pix_y, torch::Tensor order,
                                          torch::Tensor pix_offsets, int64_t tiles_x, torch::Tensor features,
                                          bool keep_state) {
  check_pixels(pix_x, order, pix_offsets);
  TORCH_CHECK(flat_ids.size(0) < std::numeric_limits<int32_t>::max(), "too many intersections for int32");
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           order, pix_offsets, tiles_x);
  const int64_t P = pix_x.size(0), D = features.size(1);
  // Every pixel belongs to exactly one tile, so every row is written exactly once: no zero fill.
  auto out = torch::empty({P, D}, features.options());
  auto alpha_out = torch::empty({P}, features.options());
  auto depth_out = torch::empty({P}, features.options());
  // For the backward (keep_state): each pixel's final transmittance and last blended intersection.
  auto T_out = torch::empty({keep_state ? P : 0}, features.options());
  auto last_out = torch::empty({keep_state ? P : 0}, features.options().dtype(torch::kInt32));
  float* Tf = T_out.data_ptr<float>();
  int32_t* lo = last_out.data_ptr<int32_t>();
  std::vector<std::vector<int32_t>> last_of(num_threads(), std::vector<int32_t>(CHUNK));
  float* o = out.data_ptr<float>();
  float* ao = alpha_out.data_ptr<float>();
  float* dout = depth_out.data_ptr<float>();
  const float* f = features.data_ptr<float>();
  const float* z = depths.data_ptr<float>();
  const bool dense = D <= DENSE_MAX;  // accumulate channel-major in the chunk, across pixels
  // Up to LOCAL_MAX channels: accumulate pixel rows in an L1-sized chunk buffer, Gaussian by Gaussian.
  constexpr int64_t LOCAL_MAX = 32;
  const bool local = !dense && D <= LOCAL_MAX;
  std::vector<std::vector<float>> local_rows(num_threads());
  // More channels: the chunk's (pixel, gaussian, weight) triples, then one sparse product per pixel.
  struct Pairs {
    std::vector<int32_t> pixel, gaussian;
    std::vector<float> weight;
    size_t n = 0;
  };
  std::vector<Pairs> pairs(num_threads());
  std::vector<std::vector<int32_t>> sorted_g(num_threads());
  std::vector<std::vector<float>> sorted_w(num_threads());
  dispatch(two_d, 1, [&](auto td, auto) {
    for_each_tile<decltype(td)::value, false, 1>(
        v, 0, v.num_tiles,
        [&](Chunk& c, int64_t) {
          for (int64_t d = 0; d <= (dense ? D : 0); ++d) std::fill(c.plane[d], c.plane[d] + CHUNK, 0.0f);
          if (local) local_rows[thread_id()].assign(CHUNK * D, 0.0f);
          else if (!dense) pairs[thread_id()].n = 0;
          if (keep_state) std::fill(last_of[thread_id()].begin(), last_of[thread_id()].end(), -1);
        },
        [&](int64_t i, int32_t g, Chunk& c, const Blend& bl) {
          if (keep_state) {
            int32_t* __restrict last = last_of[thread_id()].data();
            const int32_t ii = static_cast<int32_t>(i);
            for_each_vector(bl.vecs, [&](const int p) {
              vec::store(last + p, vec::select(vec::load(c.w + p) > splat(0.0f), splat(ii), vec::load(last + p)));
            });
          }
          if (dense) {  // the D feature planes and the depth plane (plane D) in one pass
            float values[DENSE_MAX + 1];
            const float* fg = f + static_cast<int64_t>(g) * D;
            for (int64_t d = 0; d < D; ++d) values[d] = fg[d];
            values[D] = z[g];
            accumulate_planes(static_cast<int>(D) + 1, c.plane[0], c, values, bl.vecs);
            return;
          }
          accumulate_plane(c.plane[0], c, z[g], bl.vecs);
          if (local) {
            float* rows = local_rows[thread_id()].data();
            float* wk = c.plane[1];  // free: planes 1.. are unused off the dense path
            const int cnt = compact<1>(c, bl.blocks, nullptr, c.idx, wk);
            const float* __restrict fg = f + static_cast<int64_t>(g) * D;
            if (D == 16) return add_scaled_rows<16 / W>(rows, c.idx, wk, cnt, fg);
            if (D == 32) return add_scaled_rows<32 / W>(rows, c.idx, wk, cnt, fg);
            for (int k = 0; k < cnt; ++k) {
              float* __restrict r = rows + static_cast<int64_t>(c.idx[k]) * D;
              const float wv = wk[k];
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) r[d] = madd(wv, fg[d], r[d]);
            }
            return;
          }
          Pairs& pr = pairs[thread_id()];
          if (pr.pixel.size() < pr.n + CHUNK + LANES) {
            const size_t cap = 2 * (pr.n + CHUNK + LANES);
            pr.pixel.resize(cap);
            pr.gaussian.resize(cap);
            pr.weight.resize(cap);
          }
          const int cnt = compact<1>(c, bl.blocks, nullptr, pr.pixel.data() + pr.n, pr.weight.data() + pr.n);
          std::fill(pr.gaussian.data() + pr.n, pr.gaussian.data() + pr.n + cnt, g);
          pr.n += cnt;
        },
        [&](Chunk& c, int64_t) {
          const float* pz = c.plane[dense ? D : 0];
          for (int p = 0; p < c.n; ++p) {
            ao[c.row[p]] = 1.0f - c.T[p];
            dout[c.row[p]] = pz[p];
          }
          if (keep_state)
            for (int p = 0; p < c.n; ++p) {
              Tf[c.row[p]] = c.T[p];
              lo[c.row[p]] = last_of[thread_id()][p];
            }
          if (dense) {
            for (int p = 0; p < c.n; ++p)
              for (int64_t d = 0; d < D; ++d) o[static_cast<int64_t>(c.row[p]) * D + d] = c.plane[d][p];
            return;
          }
          const int me = thread_id();
          if (local) {
            const float* rows = local_rows[me].data();
            for (int p = 0; p < c.n; ++p)
              std::copy(rows + p * D, rows + (p + 1) * D, o + static_cast<int64_t>(c.row[p]) * D);
            return;
          }
          // Counting sort of the chunk's pairs by pixel (stable: front to back within a pixel).
          const Pairs& pr = pairs[me];
          const size_t np = pr.n;
          int start[CHUNK + 1] = {0};
          for (size_t k = 0; k < np; ++k) ++start[pr.pixel[k] + 1];
          for (int p = 0; p < c.n; ++p) start[p + 1] += start[p];
          std::vector<int32_t>& sg = sorted_g[me];
          std::vector<float>& sw = sorted_w[me];
          if (sg.size() < np) {
            sg.resize(np);
            sw.resize(np);
          }
          int fill[CHUNK];
          std::copy(start, start + c.n, fill);
          for (size_t k = 0; k < np; ++k) {
            sg[fill[pr.pixel[k]]] = pr.gaussian[k];
            sw[fill[pr.pixel[k]]++] = pr.weight[k];
          }
          for (int64_t d0 = 0; d0 < D; d0 += CHANNEL_BLOCK)
            for (int p = 0; p < c.n; ++p)
              weighted_rows<false>(o + static_cast<int64_t>(c.row[p]) * D, f, D, d0,
                                   std::min(D, d0 + CHANNEL_BLOCK), sg.data() + start[p], sw.data() + start[p],
                                   start[p + 1] - start[p]);
        });
  });
  if (keep_state) return {out, alpha_out, depth_out, T_out, last_out};
  return {out, alpha_out, depth_out};
}

// Trace values [P, D] (caller's rows) onto the Gaussians with weight w^power.
// Returns weighted_sum [N, D], weight_sum [N], alpha_sum [N], hits [N] (int32).
std::vector<torch::Tensor> trace_dense(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                       torch::Tensor opacities, torch::Tensor tile_offsets,
                                       torch::Tensor flat_ids, torch::Tensor pix_x, torch::Tensor pix_y,
                                       torch::Tensor order, torch::Tensor pix_offsets, int64_t tiles_x,
                                       torch::Tensor values, int64_t power, int64_t scratch_bytes) {
  check_pixels(pix_x, order, pix_offsets);
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           order, pix_offsets, tiles_x);
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
  std::vector<std::vector<int32_t>> rows_of(num_threads(), std::vector<int32_t>(CHUNK + LANES));
  std::vector<std::vector<float>> wk_of(num_threads(), std::vector<float>(CHUNK + LANES));
  std::vector<float> buf;
  int64_t t0 = 0;
  while (t0 < v.num_tiles) {
    int64_t t1 = t0 + 1;
    while (t1 < v.num_tiles && v.tile_offsets[t1 + 1] - v.tile_offsets[t0] <= rows_cap) ++t1;
    const int64_t r0 = v.tile_offsets[t0], rows = v.tile_offsets[t1] - r0;
    buf.resize(std::max<size_t>(buf.size(), rows * D));  // rows are stored on first touch: no zero fill
    float* b = buf.data();
    dispatch(two_d, power, [&](auto td, auto pw) {
      constexpr int POWER = decltype(pw)::value;
      for_each_tile<decltype(td)::value, true, POWER>(
          v, t0, t1,
          [&](Chunk& c, int64_t) {
            if (dense)  // values channel-major for vectorised dot products
              for (int p = 0; p < CHUNK; ++p)
                for (int64_t d = 0; d < D; ++d)
                  c.plane[d][p] = p < c.n ? val[static_cast<int64_t>(c.row[p]) * D + d] : 0.0f;
          },
          [&](int64_t i, int32_t, Chunk& c, const Blend& bl) {
            float* bi = b + (i - r0) * D;
            const bool first = h_isect[i] == 0;  // (a tile of over CHUNK pixels has several chunks)
            w_isect[i] += bl.wsum;
            a_isect[i] += bl.asum;
            h_isect[i] += bl.nonzero;
            if (dense) {
              for (int64_t d = 0; d < D; ++d) {
                const float s = weighted_dot<POWER>(c, c.plane[d], bl.blocks);
                bi[d] = first ? s : bi[d] + s;
              }
              return;
            }
            const int me = thread_id();
            int32_t* rws = rows_of[me].data();
            float* wks = wk_of[me].data();
            const int cnt = compact<POWER>(c, bl.blocks, c.row, rws, wks);
            if (first) weighted_rows<false>(bi, val, D, 0, D, rws, wks, cnt);
            else weighted_rows<true>(bi, val, D, 0, D, rws, wks, cnt);
          },
          [](Chunk&, int64_t) {});
    });
    // Reduce the batch's rows into their Gaussians; thread k owns the Gaussians in [split[k], split[k+1]).
#pragma omp parallel
    {
      const int nt = num_threads(), me = thread_id();
      const int64_t lo = N * me / nt, hi = N * (me + 1) / nt;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = r0 + r;
        const int32_t g = ids[i];
        if (g < lo || g >= hi || h_isect[i] == 0) continue;  // another thread's, or never blended
        wsp[g] += w_isect[i];
        asp[g] += a_isect[i];
        hp[g] += h_isect[i];
        float* ag = accp + static_cast<int64_t>(g) * D;
        const float* br = b + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) ag[d] += br[d];
      }
    }
    t0 = t1;
  }
  return {acc, wsum, asum, hits};
}

namespace {

// sum_d a[d] b[d], in LANES partial sums (channel d into lane d % LANES) summed in lane order, then
// the channels past the last whole block: the same order in every build (an `omp simd` reduction
// would sum in as many parts as the target's vector has lanes).
inline float lane_dot(const float* a, const float* b, int64_t D) {
  vf lane[vec::PER_BLOCK] = {};
  int64_t d = 0;
  for (; d + LANES <= D; d += LANES)
    for (int h = 0; h < vec::PER_BLOCK; ++h)
      lane[h] += vec::load(a + d + h * W) * vec::load(b + d + h * W);
  float s = vec::lane_sum(lane);
  for (; d < D; ++d) s += a[d] * b[d];
  return s;
}

// Per-chunk state of the backward pass, beside the forward's Chunk (positions, T, w, planes).
struct Back {
  alignas(64) float S[CHUNK];       // sum over the Gaussians behind the current one of w * (f . dL/dC)
  alignas(64) float vATf[CHUNK];    // dL/d(alpha_out) * T_final
  alignas(64) int32_t last[CHUNK];  // the pixel's last blended intersection (-1: none, and padding)
  alignas(64) float al[CHUNK];      // alpha of the current Gaussian (0 where it does not blend)
  alignas(64) float e[CHUNK];       // o * exp(-sigma) before the 0.999 clamp
  alignas(64) float vis[CHUNK];     // exp(-sigma)
  alignas(64) float dot[CHUNK];     // f_g . dL/dC_p
  int block_last[CHUNK / LANES];    // max of `last` over each block
};

// The backward of one Gaussian over the chunk's pixels in `todo` (gsplat's RasterizeToPixels*Bwd,
// one Gaussian at a time, back to front): alpha recomputed exactly as the forward computes it, T
// before the Gaussian recovered from T after it (T_before = T_after / (1 - alpha)), then
//   dL/dalpha = (f . dL/dC) T_before - (S - dL/dA T_final) / (1 - alpha)
// with S the blended (f . dL/dC) of the Gaussians behind it, and the chain through
// alpha = min(0.999, o exp(-sigma)) to the opacity, the conic (3DGS: sigma = d^T Q d / 2) or the
// ray transform (2DGS: the ray-splat intersection, or the 2D low-pass where it is smaller), and
// the mean. `acc` [3 + S] receives sum over pixels of (dL/do, dL/dmx, dL/dmy, dL/dshape...).
// Returns the blocks where the Gaussian blends (w > 0; c.w and bk.dot are valid there).
template <bool TWO_D, typename DotFn>
inline uint32_t backward_one(const View& v, int32_t ii, int32_t g, uint32_t todo, Chunk& c, Back& bk,
                             float* acc, DotFn&& dot_fn) {
  constexpr int NS = TWO_D ? 9 : 3;
  const auto& rec = record<TWO_D>(v, g);
  const float mx = rec.mx, my = rec.my;
  const vf o = splat(rec.o), one = splat(1.0f), zero = splat(0.0f), alpha_max = splat(ALPHA_MAX);
  const float a = rec.shape[0], b = rec.shape[1], cc = rec.shape[2];
  const Quad q{a, b, cc};
  const float* M = rec.shape;
  uint32_t hit = 0;
  // Pass 1: alpha (the forward's arithmetic, so every skip decision is the same), T before, w.
  for_each_block(todo, [&](const int blk) {
    uint32_t blended = 0;
    for (int h = 0; h < vec::PER_BLOCK; ++h) {
      const int p = blk + h * W;
      vi valid;
      const vf ns = neg_sigma_log2<TWO_D>(vec::load(c.x + p), vec::load(c.y + p), mx, my, q, M, valid);
      const vi ok = (ns <= zero) & valid;
      const vf vis = exp2_neg(vec::where(ok, ns));  // the forward's value where it blends
      const vf e = o * vis;
      const vf on = vec::where(ok & (e >= splat(ALPHA_MIN)) & (splat(ii) <= vec::load(bk.last + p)), one);
      const vf al = vec::min_or(e, alpha_max) * on;
      const vf Tb = vec::load(c.T + p) / (one - al);  // unchanged where al == 0
      const vf w = al * Tb;
      vec::store(c.T + p, Tb);
      vec::store(c.w + p, w);
      vec::store(bk.al + p, al);
      vec::store(bk.e + p, e);
      vec::store(bk.vis + p, vis);
      blended |= vec::mask_bits(w > zero);
    }
    hit |= static_cast<uint32_t>(blended != 0) << (blk / LANES);
  });
  if (!hit) return 0;
  dot_fn(hit);  // bk.dot on the blocks of `hit`
  // Pass 2: dL/dalpha, S, and the chain to the Gaussian's parameters, summed per lane.
  vf lane[3 + NS][vec::PER_BLOCK] = {};
  for_each_block(hit, [&](const int blk) {
    for (int h = 0; h < vec::PER_BLOCK; ++h) {
      const int p = blk + h * W;
      const vf al = vec::load(bk.al + p), e = vec::load(bk.e + p), dt = vec::load(bk.dot + p);
      const vf S = vec::load(bk.S + p), w = vec::load(c.w + p);
      const vf on = vec::where(al > zero, one);
      const vf va = (dt * vec::load(c.T + p) - (S - vec::load(bk.vATf + p)) / (one - al)) * on;
      vec::store(bk.S + p, vec::madd(w, dt, S));
      const vf vae = vec::where(e < alpha_max, va);  // the clamp passes no gradient
      lane[0][h] += vae * vec::load(bk.vis + p);
      const vf vsig = -vae * e;  // dL/dsigma
      const vf x = vec::load(c.x + p), y = vec::load(c.y + p);
      const vf dx = x - splat(mx), dy = y - splat(my);
      if constexpr (TWO_D) {
        const RayHit r = ray_hit(x, y, M);  // the forward's intersection
        const vf hu0 = r.hu0, hu1 = r.hu1, hu2 = r.hu2, hv0 = r.hv0, hv1 = r.hv1, hv2 = r.hv2;
        const vi valid = r.c2 != zero;
        const vf c2s = vec::select(valid, r.c2, one);
        const vf us = r.c0 / c2s, vs = r.c1 / c2s, inv = one / c2s;  // the forward's us, vs
        const vf s3 = us * us + vs * vs;
        const vf s2 = low_pass_2sigma(dx, dy);
        const vi three = (s3 < s2) & valid & (s3 == s3);
        const vf g3 = vec::where(three, vsig), g2 = vec::where(~three, vsig);
        const vf usf = vec::where(three, us), vsf = vec::where(three, vs), invf = vec::where(three, inv);
        // sigma = (us^2 + vs^2) / 2, (us, vs) = (c0, c1) / c2, c = h_u x h_v
        const vf vc0 = g3 * usf * invf, vc1 = g3 * vsf * invf, vc2 = -g3 * (usf * usf + vsf * vsf) * invf;
        const vf vu0 = hv1 * vc2 - hv2 * vc1, vu1 = hv2 * vc0 - hv0 * vc2, vu2 = hv0 * vc1 - hv1 * vc0;
        const vf vv0 = vc1 * hu2 - vc2 * hu1, vv1 = vc2 * hu0 - vc0 * hu2, vv2 = vc0 * hu1 - vc1 * hu0;
        lane[3][h] -= vu0;
        lane[4][h] -= vu1;
        lane[5][h] -= vu2;
        lane[6][h] -= vv0;
        lane[7][h] -= vv1;
        lane[8][h] -= vv2;
        lane[9][h] += x * vu0 + y * vv0;
        lane[10][h] += x * vu1 + y * vv1;
        lane[11][h] += x * vu2 + y * vv2;
        // sigma = dx^2 + dy^2 (the low-pass branch)
        lane[1][h] -= splat(2.0f) * g2 * dx;
        lane[2][h] -= splat(2.0f) * g2 * dy;
      } else {
        lane[1][h] -= vsig * (splat(a) * dx + splat(b) * dy);
        lane[2][h] -= vsig * (splat(b) * dx + splat(cc) * dy);
        lane[3][h] += splat(0.5f) * vsig * dx * dx;
        lane[4][h] += vsig * dx * dy;
        lane[5][h] += splat(0.5f) * vsig * dy * dy;
      }
    }
  });
  for (int k = 0; k < 3 + NS; ++k) acc[k] = vec::lane_sum(lane[k]);
  return hit;
}

}  // namespace

// The backward of render_forward (called with keep_state) w.r.t. the screen-space parameters:
// given dL/dfeatures [P, D] and dL/dalpha [P] at the caller's pixels, returns dL/dmeans2d [N, 2],
// dL/dshape [N, 3] (conics) or [N, 9] (ray transforms), dL/dopacities [N] and dL/dfeatures [N, D].
// Deterministic, without atomics: as trace_dense, each (tile, Gaussian) intersection owns a scratch
// row (tiles in parallel), then rows are summed per Gaussian in intersection order, each thread
// owning a range of Gaussian ids. Batches of tiles keep the scratch under `scratch_bytes`.
std::vector<torch::Tensor> render_backward(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                           torch::Tensor opacities, torch::Tensor tile_offsets,
                                           torch::Tensor flat_ids, torch::Tensor pix_x, torch::Tensor pix_y,
                                           torch::Tensor order, torch::Tensor pix_offsets, int64_t tiles_x,
                                           torch::Tensor features, torch::Tensor T_final, torch::Tensor last,
                                           torch::Tensor grad_features, torch::Tensor grad_alpha,
                                           int64_t scratch_bytes) {
  check_pixels(pix_x, order, pix_offsets);
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           order, pix_offsets, tiles_x);
  const int64_t N = means2d.size(0), D = features.size(1), M = flat_ids.size(0);
  TORCH_CHECK(grad_features.size(1) == D && grad_features.size(0) == pix_x.size(0), "gradient shape mismatch");
  const int NS = two_d ? 9 : 3;
  const int64_t K = 3 + NS + D;  // scratch row: o, mx, my, shape[NS], features[D]
  auto fopts = features.options();
  auto v_means = torch::zeros({N, 2}, fopts);
  auto v_shape = torch::zeros({N, NS}, fopts);
  auto v_opac = torch::zeros({N}, fopts);
  auto v_feat = torch::zeros({N, D}, fopts);
  const float* f = features.data_ptr<float>();
  const float* Tf = T_final.data_ptr<float>();
  const int32_t* lastp = last.data_ptr<int32_t>();
  const float* go = grad_features.data_ptr<float>();
  const float* ga = grad_alpha.data_ptr<float>();
  const bool dense = D <= DENSE_MAX;
  std::vector<uint8_t> touched(M, 0);
  const int64_t rows_cap = std::max<int64_t>(1, scratch_bytes / (4 * K));
  std::vector<float> buf;
  int64_t t0 = 0;
  while (t0 < v.num_tiles) {
    int64_t t1 = t0 + 1;
    while (t1 < v.num_tiles && v.tile_offsets[t1 + 1] - v.tile_offsets[t0] <= rows_cap) ++t1;
    const int64_t r0 = v.tile_offsets[t0], rows = v.tile_offsets[t1] - r0;
    buf.resize(std::max<size_t>(buf.size(), rows * K));  // rows are stored on first touch: no zero fill
    float* bufp = buf.data();
    const auto run = [&](auto td) {
      constexpr bool TWO_D = decltype(td)::value;
#pragma omp parallel
      {
        Chunk c;
        Back bk;
        std::vector<int32_t> idx(CHUNK + LANES), rws(CHUNK + LANES);
        std::vector<float> wks(CHUNK + LANES);
        float acc[12];
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t g_begin = v.tile_offsets[t], g_end = v.tile_offsets[t + 1];
          for (int64_t base = v.pix_offsets[t]; base < v.pix_offsets[t + 1]; base += CHUNK) {
            load_chunk(v, t, base, c);
            const int padded = (c.n + LANES - 1) / LANES * LANES;
            for (int p = 0; p < padded; ++p) {
              const bool real = p < c.n;
              const int32_t row = real ? c.row[p] : 0;
              c.T[p] = real ? Tf[row] : 1.0f;
              bk.last[p] = real ? lastp[row] : -1;
              bk.S[p] = 0.0f;
              bk.dot[p] = 0.0f;  // the sparse path fills only blended pixels; others must be finite
              bk.vATf[p] = real ? ga[row] * Tf[row] : 0.0f;
              if (dense)
                for (int64_t d = 0; d < D; ++d) c.plane[d][p] = real ? go[static_cast<int64_t>(row) * D + d] : 0.0f;
            }
            int64_t i_max = -1;
            for (int blk = 0; blk < padded; blk += LANES) {
              int m = -1;
              for (int j = blk; j < blk + LANES; ++j) m = std::max(m, bk.last[j]);
              bk.block_last[blk / LANES] = m;
              i_max = std::max<int64_t>(i_max, m);
            }
            const int nblocks = padded / LANES;
            for (int64_t i = std::min(g_end - 1, i_max); i >= g_begin; --i) {
              constexpr int AHEAD = 8;
              if (i - AHEAD >= g_begin) __builtin_prefetch(&record<TWO_D>(v, v.flat_ids[i - AHEAD]));
              const int32_t g = v.flat_ids[i];
              int r_lo = 0, r_hi = TILE;
              if (!TWO_D) {  // as the forward: only the rows the Gaussian reaches
                const auto& rec = record<TWO_D>(v, g);
                if (rec.cols.hi < c.tile_x0 || rec.cols.lo >= c.tile_x0 + TILE) continue;
                r_lo = std::max(rec.rows.lo - c.tile_y0, 0);
                r_hi = std::min(rec.rows.hi - c.tile_y0 + 1, TILE);
                if (r_lo >= r_hi) continue;
              }
              const int b0 = c.row_begin[r_lo] / LANES, b1 = (c.row_begin[r_hi] + LANES - 1) / LANES;
              uint32_t todo = 0;
              for (int k = b0; k < b1 && k < nblocks; ++k)
                todo |= static_cast<uint32_t>(bk.block_last[k] >= i) << k;
              if (!todo) continue;
              const float* fg = f + static_cast<int64_t>(g) * D;
              int cnt = 0;
              const auto dot_fn = [&](uint32_t hit) {
                if (dense) {
                  for_each_block(hit, [&](const int blk) {
                    for (int p = blk; p < blk + LANES; p += W) {
                      vf s = vf{};
                      for (int64_t d = 0; d < D; ++d) s = vec::madd(splat(fg[d]), vec::load(c.plane[d] + p), s);
                      vec::store(bk.dot + p, s);
                    }
                  });
                  return;
                }
                cnt = compact<1>(c, hit, nullptr, idx.data(), wks.data());
                for (int k = 0; k < cnt; ++k) {
                  const int p = idx[k];
                  rws[k] = c.row[p];
                  bk.dot[p] = lane_dot(fg, go + static_cast<int64_t>(c.row[p]) * D, D);
                }
              };
              const uint32_t hit = backward_one<TWO_D>(v, static_cast<int32_t>(i), g, todo, c, bk, acc, dot_fn);
              if (!hit) continue;
              float* r = bufp + (i - r0) * K;
              const bool first = !touched[i];
              touched[i] = 1;
              for (int k = 0; k < 3 + NS; ++k) r[k] = first ? acc[k] : r[k] + acc[k];
              float* rf = r + 3 + NS;
              if (dense) {
                for (int64_t d = 0; d < D; ++d) {
                  const float s = weighted_dot<1>(c, c.plane[d], hit);
                  rf[d] = first ? s : rf[d] + s;
                }
              } else if (first) {
                weighted_rows<false>(rf, go, D, 0, D, rws.data(), wks.data(), cnt);
              } else {
                weighted_rows<true>(rf, go, D, 0, D, rws.data(), wks.data(), cnt);
              }
            }
          }
        }
      }
    };
    if (two_d) run(std::true_type{});
    else run(std::false_type{});
    // Sum the batch's rows into their Gaussians in intersection order; thread k owns a range of ids.
    float* vm = v_means.data_ptr<float>();
    float* vs = v_shape.data_ptr<float>();
    float* vo = v_opac.data_ptr<float>();
    float* vf = v_feat.data_ptr<float>();
#pragma omp parallel
    {
      const int nt = num_threads(), me = thread_id();
      const int64_t lo = N * me / nt, hi = N * (me + 1) / nt;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = r0 + r;
        const int32_t g = v.flat_ids[i];
        if (g < lo || g >= hi || !touched[i]) continue;
        const float* br = bufp + r * K;
        vo[g] += br[0];
        vm[2 * g] += br[1];
        vm[2 * g + 1] += br[2];
        for (int k = 0; k < NS; ++k) vs[g * NS + k] += br[3 + k];
        float* fg = vf + static_cast<int64_t>(g) * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) fg[d] += br[3 + NS + d];
      }
    }
    t0 = t1;
  }
  return {v_means, v_shape, v_opac, v_feat};
}

namespace {
struct Entry {
  int32_t gaussian;  // (in a Gaussian's bucket: the entry's position there, the sort's tie-break)
  int32_t label;
  float weight;
};

constexpr int64_t SMALL_BUCKET = 32;  // a Gaussian's entries up to this many: insertion sorts

// Sorts b[0, n) by `less`, stably (equal elements keep their order); fast for a few elements.
template <typename Less>
inline void insertion_sort(Entry* b, int64_t n, Less less) {
  for (int64_t j = 1; j < n; ++j) {
    const Entry e = b[j];
    int64_t i = j;
    for (; i > 0 && less(e, b[i - 1]); --i) b[i] = b[i - 1];
    b[i] = e;
  }
}

// The entries one chunk of pixels emitted: per_thread[thread][begin, end). Chunks are reduced in
// the order of their first pixel (`base`, i.e. tile order), whichever thread traced them.
struct Span {
  int64_t base;
  int32_t thread;
  int64_t begin, end;
};
}  // namespace

// Trace an integer label map [P] (caller's rows; negative = ignore) into a per-Gaussian top-k
// histogram. Returns labels [N, k] (int32, -1 = empty), weights [N, k], weight_sum [N],
// alpha_sum [N], hits [N]; with `sparse` the histogram as entries instead of [N, k] arrays:
// gaussians [E] (int32, ascending), labels [E], weights [E] (heaviest first within a Gaussian).
//
// Deterministic: a Gaussian's entries from its tiles are summed per label in tile order (then
// intersection, as listed in the tile), not in the order threads happened to produce them, so the
// result is bitwise the same on any thread count (as render_backward's per-intersection rows).
std::vector<torch::Tensor> trace_labels(bool two_d, torch::Tensor means2d, torch::Tensor shape_params,
                                        torch::Tensor opacities, torch::Tensor tile_offsets,
                                        torch::Tensor flat_ids, torch::Tensor pix_x, torch::Tensor pix_y,
                                        torch::Tensor order, torch::Tensor pix_offsets, int64_t tiles_x,
                                        torch::Tensor labels, int64_t power, int64_t top_k, bool sparse) {
  check_pixels(pix_x, order, pix_offsets);
  const View v = make_view(two_d, means2d, shape_params, opacities, tile_offsets, flat_ids, pix_x, pix_y,
                           order, pix_offsets, tiles_x);
  const int64_t N = means2d.size(0), M = flat_ids.size(0);
  const int32_t* lab = labels.data_ptr<int32_t>();
  auto fopts = means2d.options();
  auto wsum = torch::zeros({N}, fopts);
  auto asum = torch::zeros({N}, fopts);
  auto hits = torch::zeros({N}, fopts.dtype(torch::kInt32));

  std::vector<float> w_isect(M, 0.0f), a_isect(M, 0.0f);
  std::vector<int32_t> h_isect(M, 0);
  const int nt = num_threads();
  std::vector<std::vector<Entry>> per_thread(nt);
  std::vector<std::vector<Span>> spans_of(nt);
  std::vector<int64_t> span_begin(nt, 0);

  // Tile-local label table per thread: each chunk maps its pixels' labels to slots 0..L-1.
  struct Local {
    int32_t uniq[CHUNK];
    int slot[CHUNK];
    float acc[CHUNK];
    int L = 0;
  };
  std::vector<Local> locals(nt);
  dispatch(two_d, power, [&](auto td, auto pw) {
    constexpr int POWER = decltype(pw)::value;
    for_each_tile<decltype(td)::value, true, POWER>(
        v, 0, v.num_tiles,
        [&](Chunk& c, int64_t) {
          const int me = thread_id();
          Local& loc = locals[me];
          span_begin[me] = static_cast<int64_t>(per_thread[me].size());
          // one label and no ignored pixel (most chunks of a region map): no sort
          const int32_t l0 = c.n ? lab[c.row[0]] : -1;
          bool one = l0 >= 0;
          for (int p = 1; p < c.n && one; ++p) one = lab[c.row[p]] == l0;
          if (one) {
            loc.uniq[0] = l0;
            loc.L = 1;
            std::fill(loc.slot, loc.slot + c.n, 0);
            return;
          }
          int n = 0;
          for (int p = 0; p < c.n; ++p) {
            const int32_t l = lab[c.row[p]];
            if (l < 0) c.live[p] = 0;  // ignored: never blended, so it adds nothing anywhere
            else loc.uniq[n++] = l;
          }
          std::sort(loc.uniq, loc.uniq + n);
          loc.L = static_cast<int>(std::unique(loc.uniq, loc.uniq + n) - loc.uniq);
          for (int p = 0; p < c.n; ++p) {
            const int32_t l = lab[c.row[p]];
            loc.slot[p] = l < 0 ? 0 : static_cast<int>(std::lower_bound(loc.uniq, loc.uniq + loc.L, l) - loc.uniq);
          }
          if (loc.L > 1 && loc.L <= DENSE_MAX)  // indicator planes for vectorised per-label sums
            for (int l = 0; l < loc.L; ++l)
              for (int p = 0; p < CHUNK; ++p) c.plane[l][p] = p < c.n && loc.slot[p] == l ? 1.0f : 0.0f;
        },
        [&](int64_t i, int32_t g, Chunk& c, const Blend& bl) {
          Local& loc = locals[thread_id()];
          std::vector<Entry>& out = per_thread[thread_id()];
          w_isect[i] += bl.wsum;
          a_isect[i] += bl.asum;
          h_isect[i] += bl.nonzero;
          if (loc.L == 1) {
            // One label (most tiles): its pixels are all the chunk's blending pixels, so its sum is
            // sum w^power, which the blend already summed in the same lanes and order (bitwise what
            // weighted_dot gives: w * 1 is exact, and the blocks it skips add zeros).
            loc.acc[0] = bl.wsum;
          } else if (loc.L <= DENSE_MAX) {
            for (int l = 0; l < loc.L; ++l) loc.acc[l] = weighted_dot<POWER>(c, c.plane[l], bl.blocks);
          } else {
            std::fill(loc.acc, loc.acc + loc.L, 0.0f);
            float* wk = c.plane[0];  // free on this path (more than DENSE_MAX labels)
            const int cnt = compact<POWER>(c, bl.blocks, nullptr, c.idx, wk);
            for (int k = 0; k < cnt; ++k) loc.acc[loc.slot[c.idx[k]]] += wk[k];
          }
          for (int l = 0; l < loc.L; ++l)
            if (loc.acc[l] > 0.0f) out.push_back({g, loc.uniq[l], loc.acc[l]});
        },
        [&](Chunk&, int64_t base) {
          const int me = thread_id();
          const int64_t end = static_cast<int64_t>(per_thread[me].size());
          if (end > span_begin[me]) spans_of[me].push_back({base, me, span_begin[me], end});
        });
  });

  float* wsp = wsum.data_ptr<float>();
  float* asp = asum.data_ptr<float>();
  int32_t* hp = hits.data_ptr<int32_t>();
  // Bucket entries by Gaussian (counting sort), visiting the chunks in tile order: a bucket lists
  // its entries by tile, then intersection, then label, however the tiles were scheduled. In
  // parallel: the chunks (in tile order) are cut into one run per thread of about equal entries;
  // each thread counts its run's entries per Gaussian, a parallel scan over Gaussians gives each
  // thread where its entries of every bucket start (behind the earlier runs'), and each thread
  // scatters its run. The buckets are the serial sort's, entry for entry, on any thread count.
  std::vector<Span> spans;
  for (const auto& s : spans_of) spans.insert(spans.end(), s.begin(), s.end());
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.base < b.base; });
  std::vector<int64_t> span_entries(spans.size() + 1, 0);  // entries before each span
  for (size_t k = 0; k < spans.size(); ++k) span_entries[k + 1] = span_entries[k] + spans[k].end - spans[k].begin;
  const int64_t E = span_entries.back();
  std::vector<int64_t> start(N + 1, 0);
  std::unique_ptr<Entry[]> bucket(new Entry[std::max<int64_t>(E, 1)]);  // every slot is written: no fill
  std::vector<int64_t> run_begin(nt + 1, static_cast<int64_t>(spans.size()));  // thread k: spans [rb[k], rb[k+1])
  run_begin[0] = 0;
  for (int k = 1; k < nt; ++k)
    run_begin[k] = std::lower_bound(span_entries.begin(), span_entries.end() - 1, E * k / nt) - span_entries.begin();
  std::vector<std::vector<int64_t>> at_of(nt);  // per thread: counts per Gaussian, then where its entries go
  std::vector<int64_t> part_sum(nt + 1, 0);
#pragma omp parallel num_threads(nt)
  {
    const int team = num_threads_in_team(), me = thread_id();
    // Per-Gaussian sums in intersection order (one thread, beside the counting: a pass over [M]
    // scalars; threads owning ranges of Gaussians each scanned all of it, with an unpredictable
    // branch, and took longer). Only the blended intersections touch the [N] sums: in a dense 1M
    // cloud most listed ones never blend, and their random writes were a quarter of the trace.
#pragma omp single nowait
    for (int64_t i = 0; i < M; ++i) {
      if (h_isect[i] == 0) continue;  // never blended (culled, or behind finished pixels): adds exact zeros
      const int32_t g = v.flat_ids[i];
      wsp[g] += w_isect[i];
      asp[g] += a_isect[i];
      hp[g] += h_isect[i];
    }
    // runs of the threads of this team (fewer threads than planned: one takes the rest)
    const auto run_of = [&](int k) {
      const int64_t end = k == team - 1 ? static_cast<int64_t>(spans.size()) : run_begin[k + 1];
      return std::pair<int64_t, int64_t>{run_begin[k], end};
    };
    std::vector<int64_t>& mine = at_of[me];
    mine.assign(N, 0);
    const auto [s_lo, s_hi] = run_of(me);
    for (int64_t k = s_lo; k < s_hi; ++k) {
      const Entry* e = per_thread[spans[k].thread].data();
      for (int64_t j = spans[k].begin; j < spans[k].end; ++j) ++mine[e[j].gaussian];
    }
#pragma omp barrier
    // scan: bucket g starts at start[g]; thread k's entries of it after threads 0..k-1's
    const int64_t g_lo = N * me / team, g_hi = N * (me + 1) / team;
    int64_t total = 0;
    for (int64_t g = g_lo; g < g_hi; ++g)
      for (int k = 0; k < team; ++k) total += at_of[k][g];
    part_sum[me + 1] = total;
#pragma omp barrier
    int64_t at = 0;
    for (int k = 0; k <= me; ++k) at += part_sum[k];
    for (int64_t g = g_lo; g < g_hi; ++g) {
      start[g] = at;
      for (int k = 0; k < team; ++k) {
        const int64_t n = at_of[k][g];
        at_of[k][g] = at;
        at += n;
      }
    }
    if (me == team - 1) start[N] = at;
#pragma omp barrier
    Entry* out = bucket.get();
    for (int64_t k = s_lo; k < s_hi; ++k) {
      const Entry* e = per_thread[spans[k].thread].data();
      for (int64_t j = spans[k].begin; j < spans[k].end; ++j) out[mine[e[j].gaussian]++] = e[j];
    }
  }
  per_thread.clear();

  // Reduce each bucket to its top-k labels: same-label weights summed in bucket order (a stable
  // sort by label), then the heaviest first, ties by label. Dense: written to [N, k] at once;
  // sparse: left at the bucket's start, counted, then copied out behind each other.
  torch::Tensor out_labels, out_weights, out_gaussians;
  if (!sparse) {
    out_labels = torch::full({N, top_k}, -1, fopts.dtype(torch::kInt32));
    out_weights = torch::zeros({N, top_k}, fopts);
  }
  int32_t* dense_l = sparse ? nullptr : out_labels.data_ptr<int32_t>();
  float* dense_w = sparse ? nullptr : out_weights.data_ptr<float>();
  std::vector<int64_t> at(sparse ? N + 1 : 0, 0);  // sparse: where each Gaussian's entries go
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 1024)
    for (int64_t g = 0; g < N; ++g) {
      Entry* b = bucket.get() + start[g];
      const int64_t n = start[g + 1] - start[g];
      if (n == 0) continue;
      const auto heavier = [](const Entry& a, const Entry& c) {
        return a.weight > c.weight || (a.weight == c.weight && a.label < c.label);
      };
      if (n <= SMALL_BUCKET) {  // the common case (a Gaussian on a few tiles): stable insertion sort
        insertion_sort(b, n, [](const Entry& a, const Entry& c) { return a.label < c.label; });
      } else {
        for (int64_t j = 0; j < n; ++j) b[j].gaussian = static_cast<int32_t>(j);
        std::sort(b, b + n, [](const Entry& a, const Entry& c) {
          return a.label < c.label || (a.label == c.label && a.gaussian < c.gaussian);
        });
      }
      int64_t m = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (m > 0 && b[m - 1].label == b[j].label) b[m - 1].weight += b[j].weight;
        else b[m++] = b[j];
      }
      const int64_t k = std::min<int64_t>(top_k, m);
      if (m <= SMALL_BUCKET) insertion_sort(b, m, heavier);  // labels are unique now: a strict order
      else std::partial_sort(b, b + k, b + m, heavier);
      if (sparse) {
        at[g + 1] = k;
        continue;
      }
      for (int64_t j = 0; j < k; ++j) {
        dense_l[g * top_k + j] = b[j].label;
        dense_w[g * top_k + j] = b[j].weight;
      }
    }
    if (sparse) {
#pragma omp single
      {
        for (int64_t g = 0; g < N; ++g) at[g + 1] += at[g];
        out_gaussians = torch::empty({at[N]}, fopts.dtype(torch::kInt32));
        out_labels = torch::empty({at[N]}, fopts.dtype(torch::kInt32));
        out_weights = torch::empty({at[N]}, fopts);
      }
      int32_t* og = out_gaussians.data_ptr<int32_t>();
      int32_t* ol = out_labels.data_ptr<int32_t>();
      float* ow = out_weights.data_ptr<float>();
#pragma omp for schedule(static)
      for (int64_t g = 0; g < N; ++g) {
        const Entry* b = bucket.get() + start[g];
        for (int64_t j = 0, o = at[g]; o < at[g + 1]; ++j, ++o) {
          og[o] = static_cast<int32_t>(g);
          ol[o] = b[j].label;
          ow[o] = b[j].weight;
        }
      }
    }
  }
  if (!sparse) return {out_labels, out_weights, wsum, asum, hits};
  return {out_gaussians, out_labels, out_weights, wsum, asum, hits};
}

// ---- projection: Gaussians -> screen space, then tile lists ------------------------------------
//
// project_forward mirrors gs_core/engine/projection.py (the readable torch reference, and the test
// oracle) formula by formula in float32: 3DGS EWA splatting (3DGS paper Eq. 5-6: Sigma = R S S^T R^T,
// Sigma' = J W Sigma W^T J^T, plus gsplat's eps2d low-pass and its frustum clamp of tx/tz, ty/tz in
// the Jacobian) and 2DGS ray-splat transforms (gsplat's fully_fused_projection_2dgs), then bin_tiles
// (every Gaussian in each tile its square extent touches, a tile's list sorted by depth, ties by index).
// The torch reference is dozens of small ATen ops, each its own parallel region; with passive
// OpenMP waits every one of them waits for sleeping threads to wake. Here the whole projection is
// ONE parallel region (see project_forward for its phases and the barriers between them).
// project_backward is the vector-Jacobian product of the same chain (gsplat's projection backward),
// per Gaussian, so it needs no atomics and is bitwise the same on any thread count.
namespace {

constexpr float EPS2D = 0.3f;          // as projection.EPS2D
constexpr float RADIUS_SIGMAS = 3.33f;  // as projection.RADIUS_SIGMAS
constexpr float NEAR_PLANE = 0.01f, FAR_PLANE = 1e10f;
constexpr float NORM_EPS = 1e-12f;     // torch.nn.functional.normalize's eps
constexpr float DET_MIN = 1e-10f;      // the reference's det clamp

// The camera: world -> camera rotation R (row-major) and translation t, pinhole intrinsics.
struct ProjCam {
  float R[9], t[3];
  float fx, fy, cx, cy;
  float lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;  // the Jacobian's frustum clamp of tx/tz, ty/tz
  int64_t width, height;
};

ProjCam make_cam(const torch::Tensor& viewmat, const torch::Tensor& K, int64_t width, int64_t height) {
  TORCH_CHECK(viewmat.dtype() == torch::kFloat32 && viewmat.numel() == 16 && viewmat.is_contiguous(),
              "viewmat must be a contiguous float32 [4, 4]");
  TORCH_CHECK(K.dtype() == torch::kFloat32 && K.numel() == 9 && K.is_contiguous(),
              "K must be a contiguous float32 [3, 3]");
  const float* V = viewmat.data_ptr<float>();
  const float* k = K.data_ptr<float>();
  ProjCam c;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) c.R[3 * i + j] = V[4 * i + j];
    c.t[i] = V[4 * i + 3];
  }
  c.fx = k[0];
  c.fy = k[4];
  c.cx = k[2];
  c.cy = k[5];
  c.width = width;
  c.height = height;
  // The reference's order of float32 operations (a Python float times a float32 tensor rounds to float32).
  const float tan_fovx = 0.5f * static_cast<float>(width) / c.fx, tan_fovy = 0.5f * static_cast<float>(height) / c.fy;
  c.lim_x_pos = (static_cast<float>(width) - c.cx) / c.fx + 0.3f * tan_fovx;
  c.lim_x_neg = c.cx / c.fx + 0.3f * tan_fovx;
  c.lim_y_pos = (static_cast<float>(height) - c.cy) / c.fy + 0.3f * tan_fovy;
  c.lim_y_neg = c.cy / c.fy + 0.3f * tan_fovy;
  return c;
}

// float -> int32 as torch's .to(torch.int32) does on x86 (cvttss2si): truncation, and INT32_MIN for
// NaN or out of range (a C++ cast would be undefined there).
inline int32_t to_int32(float x) {
  return x > -2147483648.0f && x < 2147483648.0f ? static_cast<int32_t>(x) : std::numeric_limits<int32_t>::min();
}

// torch.clamp(x, lo, hi) (NaN stays NaN)
inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// Camera-space mean R m + t.
inline void to_camera(const ProjCam& c, const float* m, float* tc) {
  for (int i = 0; i < 3; ++i) tc[i] = c.R[3 * i] * m[0] + c.R[3 * i + 1] * m[1] + c.R[3 * i + 2] * m[2] + c.t[i];
}

// Unit quaternion qn = q / max(|q|, eps) (wxyz) and its rotation matrix (row-major); returns |q|.
inline float quat_rotmat(const float* q, float* qn, float* rot) {
  const float norm = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const float d = norm > NORM_EPS ? norm : NORM_EPS;
  for (int k = 0; k < 4; ++k) qn[k] = q[k] / d;
  const float w = qn[0], x = qn[1], y = qn[2], z = qn[3];
  rot[0] = 1 - 2 * (y * y + z * z), rot[1] = 2 * (x * y - w * z), rot[2] = 2 * (x * z + w * y);
  rot[3] = 2 * (x * y + w * z), rot[4] = 1 - 2 * (x * x + z * z), rot[5] = 2 * (y * z - w * x);
  rot[6] = 2 * (x * z - w * y), rot[7] = 2 * (y * z + w * x), rot[8] = 1 - 2 * (x * x + y * y);
  return norm;
}

// dL/dq (raw quaternion) from dL/drot, through the rotation formula and the normalisation.
inline void quat_rotmat_vjp(const float* qn, float norm, const float* v, float* v_q) {
  const float w = qn[0], x = qn[1], y = qn[2], z = qn[3];
  float g[4];
  g[0] = 2 * (-z * v[1] + y * v[2] + z * v[3] - x * v[5] - y * v[6] + x * v[7]);
  g[1] = 2 * (y * v[1] + z * v[2] + y * v[3] - 2 * x * v[4] - w * v[5] + z * v[6] + w * v[7] - 2 * x * v[8]);
  g[2] = 2 * (-2 * y * v[0] + x * v[1] + w * v[2] + x * v[3] + z * v[5] - w * v[6] + z * v[7] - 2 * y * v[8]);
  g[3] = 2 * (-2 * z * v[0] - w * v[1] + x * v[2] + w * v[3] - 2 * z * v[4] + y * v[5] + x * v[6] + y * v[7]);
  if (norm >= NORM_EPS) {  // d(q / |q|): (g - qn (qn . g)) / |q|
    const float dot = qn[0] * g[0] + qn[1] * g[1] + qn[2] * g[2] + qn[3] * g[3];
    for (int k = 0; k < 4; ++k) v_q[k] = (g[k] - qn[k] * dot) / norm;
  } else {  // the clamped norm is a constant
    for (int k = 0; k < 4; ++k) v_q[k] = g[k] / NORM_EPS;
  }
}

// C = A B^T for row-major 3x3 (C[i][j] = sum_k A[i][k] B[j][k]); C = A B.
inline void mul_abt(const float* A, const float* B, float* C) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C[3 * i + j] = A[3 * i] * B[3 * j] + A[3 * i + 1] * B[3 * j + 1] + A[3 * i + 2] * B[3 * j + 2];
}
inline void mul_ab(const float* A, const float* B, float* C) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C[3 * i + j] = A[3 * i] * B[j] + A[3 * i + 1] * B[3 + j] + A[3 * i + 2] * B[6 + j];
}
// C = A^T B
inline void mul_atb(const float* A, const float* B, float* C) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C[3 * i + j] = A[i] * B[j] + A[3 + i] * B[3 + j] + A[6 + i] * B[6 + j];
}

// Everything the 3DGS forward computes for one Gaussian (the backward recomputes it).
struct Ewa {
  float tc[3], qn[4], norm, rot[9], Mr[9], Sc[9];  // camera mean, unit quat, |q|, R(q), R(q) S, W Sigma W^T
  float u, v;           // tx/tz, ty/tz before the clamp
  float txc, tyc;       // tz * clamped (tx/tz, ty/tz)
  float J[6];           // [2, 3] row-major
  float G[4];           // 2D covariance (+ eps2d) row-major
  float det;            // G00 G11 - G01 G10, before the clamp
};

inline void ewa(const ProjCam& c, const float* m, const float* q, const float* s, Ewa& e) {
  to_camera(c, m, e.tc);
  e.norm = quat_rotmat(q, e.qn, e.rot);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) e.Mr[3 * i + j] = e.rot[3 * i + j] * s[j];
  float Sig[9], RS[9];
  mul_abt(e.Mr, e.Mr, Sig);   // Sigma = M M^T (Eq. 6)
  mul_ab(c.R, Sig, RS);
  mul_abt(RS, c.R, e.Sc);     // W Sigma W^T
  const float tx = e.tc[0], ty = e.tc[1], tz = e.tc[2];
  e.u = tx / tz;
  e.v = ty / tz;
  e.txc = tz * clampf(e.u, -c.lim_x_neg, c.lim_x_pos);
  e.tyc = tz * clampf(e.v, -c.lim_y_neg, c.lim_y_pos);
  const float tz2 = tz * tz;
  e.J[0] = c.fx / tz, e.J[1] = 0.0f, e.J[2] = -c.fx * e.txc / tz2;
  e.J[3] = 0.0f, e.J[4] = c.fy / tz, e.J[5] = -c.fy * e.tyc / tz2;
  float JS[6];  // J Sc (Eq. 5)
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      JS[3 * i + j] = e.J[3 * i] * e.Sc[j] + e.J[3 * i + 1] * e.Sc[3 + j] + e.J[3 * i + 2] * e.Sc[6 + j];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      e.G[2 * i + j] = JS[3 * i] * e.J[3 * j] + JS[3 * i + 1] * e.J[3 * j + 1] + JS[3 * i + 2] * e.J[3 * j + 2] +
                       (i == j ? EPS2D : 0.0f);
  e.det = e.G[0] * e.G[3] - e.G[1] * e.G[2];
}

// Everything the 2DGS forward computes for one Gaussian.
struct RaySplat {
  float tc[3], qn[4], norm, rot[9], Mr[9];
  float T[9];     // [R R(q) S columns 0, 1 | camera mean] (gsplat's T_cl)
  float Mk[9];    // K T: the ray transform, row-major (projection.py's ray_transforms)
  float d;        // sum_i test_i Mk[2][i]^2, test = (1, 1, -1)
  bool ok;        // |d| > 0
  float f[3];     // test_i / d (0 when not ok)
  float m2d[2];
};

inline void ray_splat(const ProjCam& c, const float* m, const float* q, const float* s, RaySplat& r) {
  to_camera(c, m, r.tc);
  r.norm = quat_rotmat(q, r.qn, r.rot);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r.Mr[3 * i + j] = r.rot[3 * i + j] * s[j];
  float RS[9];
  mul_ab(c.R, r.Mr, RS);
  for (int i = 0; i < 3; ++i) {
    r.T[3 * i] = RS[3 * i];
    r.T[3 * i + 1] = RS[3 * i + 1];
    r.T[3 * i + 2] = r.tc[i];
  }
  const float Kt[9] = {c.fx, 0.0f, c.cx, 0.0f, c.fy, c.cy, 0.0f, 0.0f, 1.0f};
  mul_ab(Kt, r.T, r.Mk);
  const float test[3] = {1.0f, 1.0f, -1.0f};
  r.d = r.Mk[6] * r.Mk[6] * test[0] + r.Mk[7] * r.Mk[7] * test[1] + r.Mk[8] * r.Mk[8] * test[2];
  r.ok = std::fabs(r.d) > 0.0f;
  for (int i = 0; i < 3; ++i) r.f[i] = r.ok ? test[i] / r.d : 0.0f;
  for (int j = 0; j < 2; ++j)
    r.m2d[j] = r.Mk[3 * j] * r.Mk[6] * r.f[0] + r.Mk[3 * j + 1] * r.Mk[7] * r.f[1] + r.Mk[3 * j + 2] * r.Mk[8] * r.f[2];
}

// Sorts keys a[0, n) by their high 32 bits, stably (LSD radix, 8 bits a pass; passes where every key
// has the same byte are skipped). Uses tmp[0, n); returns whichever of a or tmp holds the result.
const uint64_t* radix_sort_high32(uint64_t* a, uint64_t* tmp, int64_t n) {
  for (int shift = 32; shift < 64; shift += 8) {
    int64_t count[257] = {0};
    for (int64_t i = 0; i < n; ++i) ++count[((a[i] >> shift) & 255) + 1];
    if (std::find(count + 1, count + 257, n) != count + 257) continue;  // one bucket: order unchanged
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (int64_t i = 0; i < n; ++i) tmp[count[(a[i] >> shift) & 255]++] = a[i];
    std::swap(a, tmp);
  }
  return a;
}

void check_gaussians(const torch::Tensor& means, const torch::Tensor& quats, const torch::Tensor& scales) {
  const int64_t N = means.size(0);
  for (const auto* t : {&means, &quats, &scales})
    TORCH_CHECK(t->dtype() == torch::kFloat32 && t->is_contiguous() && t->dim() == 2 && t->size(0) == N,
                "means, quats, scales must be contiguous float32 [N, k]");
  TORCH_CHECK(means.size(1) == 3 && quats.size(1) == 4 && scales.size(1) == 3, "means [N, 3], quats [N, 4], scales [N, 3]");
}

}  // namespace

// Project N Gaussians into one camera and bin them into tiles: means [N, 3], quats [N, 4] (wxyz, any
// length), scales [N, 3], viewmat [4, 4] world -> camera, K [3, 3] -> means2d [N, 2], depths [N],
// radii [N, 2] int32 (0 = culled), conics [N, 3] (3DGS) or ray transforms [N, 3, 3] (2DGS),
// tile_offsets [tiles + 1] int64, flat_ids [M] int32: exactly projection.project's fields.
std::vector<torch::Tensor> project_forward(bool two_d, torch::Tensor means, torch::Tensor quats,
                                           torch::Tensor scales, torch::Tensor viewmat, torch::Tensor K,
                                           int64_t width, int64_t height, int64_t tile_size) {
  check_gaussians(means, quats, scales);
  TORCH_CHECK(tile_size > 0 && width > 0 && height > 0, "image and tile sizes must be positive");
  const ProjCam cam = make_cam(viewmat, K, width, height);
  const int64_t N = means.size(0);
  TORCH_CHECK(N < std::numeric_limits<int32_t>::max(), "too many Gaussians for int32 ids");
  const int64_t tiles_x = (width + tile_size - 1) / tile_size, tiles_y = (height + tile_size - 1) / tile_size;
  const int64_t T = tiles_x * tiles_y;
  auto fopts = means.options();
  auto means2d = torch::empty({N, 2}, fopts);
  auto depths = torch::empty({N}, fopts);
  auto radii = torch::empty({N, 2}, fopts.dtype(torch::kInt32));
  auto shape = two_d ? torch::empty({N, 3, 3}, fopts) : torch::empty({N, 3}, fopts);
  auto tile_offsets = torch::empty({T + 1}, fopts.dtype(torch::kInt64));
  torch::Tensor flat_ids;
  const float* mp = means.data_ptr<float>();
  const float* qp = quats.data_ptr<float>();
  const float* sp = scales.data_ptr<float>();
  float* m2 = means2d.data_ptr<float>();
  float* dp = depths.data_ptr<float>();
  int32_t* rp = radii.data_ptr<int32_t>();
  float* shp = shape.data_ptr<float>();
  int64_t* offs = tile_offsets.data_ptr<int64_t>();
  // Per Gaussian: its tile rectangle [x0, x1) x [y0, y1) (empty when culled).
  std::vector<int32_t> rect(4 * N);
  const int max_threads = num_threads();
  // Per thread: the (depth bits << 32 | id) keys of the Gaussians it listed, in id order.
  std::vector<std::vector<uint64_t>> keys_of(max_threads);
  std::vector<uint64_t> keys, scratch;  // all of them, then sorted by depth, then id
  const uint64_t* sorted = nullptr;
  // Per thread and tile: intersections counted, then the thread's write position in the tile.
  std::vector<int64_t> per_thread(static_cast<size_t>(max_threads) * T, 0);
  const float ts = static_cast<float>(tile_size);

  // One parallel region, its phases separated by barriers (under passive waits a barrier costs a
  // wake-up like a region; each is there because the next phase reads what all threads wrote):
  //   1. per Gaussian (threads own contiguous id ranges): the projection, its outputs, its tile
  //      rectangle and, when it is listed, its (depth, id) key;
  //   2. one thread: the keys in id order, radix-sorted by depth (stable: ties stay in id order);
  //   3. per listed Gaussian (threads own contiguous ranges of the sorted keys): per-tile counts;
  //   4. one thread: where each thread's entries start in each tile, the tiles' offsets, the output;
  //   5. the same ranges as 3: ids written into their tiles. Visiting the Gaussians front to back,
  //      thread after thread, leaves every tile's list sorted by (depth, id) without sorting it:
  //      one sort of the listed Gaussians instead of one per tile of all intersections (which
  //      took half the projection's time on garden).
#pragma omp parallel num_threads(max_threads)
  {
    const int nt = num_threads_in_team(), me = thread_id();
    const int64_t g_lo = N * me / nt, g_hi = N * (me + 1) / nt;
    std::vector<uint64_t>& mine = keys_of[me];
    mine.reserve(g_hi - g_lo);
    for (int64_t g = g_lo; g < g_hi; ++g) {
      const float* m = mp + 3 * g;
      const float* q = qp + 4 * g;
      const float* s = sp + 3 * g;
      float mx, my, tz, rx, ry;
      bool valid;
      if (two_d) {
        RaySplat r;
        ray_splat(cam, m, q, s, r);
        mx = r.m2d[0], my = r.m2d[1], tz = r.tc[2];
        valid = r.ok && tz > NEAR_PLANE && tz < FAR_PLANE;
        for (int k = 0; k < 9; ++k) shp[9 * g + k] = r.Mk[k];
        float ext[2];
        for (int j = 0; j < 2; ++j) {  // sqrt(max(m^2 - sum_i Mk[j][i]^2 f_i, 1e-4))
          const float sq = r.Mk[3 * j] * r.Mk[3 * j] * r.f[0] + r.Mk[3 * j + 1] * r.Mk[3 * j + 1] * r.f[1] +
                           r.Mk[3 * j + 2] * r.Mk[3 * j + 2] * r.f[2];
          const float e2 = r.m2d[j] * r.m2d[j] - sq;
          ext[j] = std::sqrt(e2 < 1e-4f ? 1e-4f : e2);  // clamp_min: NaN stays NaN
        }
        rx = std::ceil(RADIUS_SIGMAS * ext[0]);
        ry = std::ceil(RADIUS_SIGMAS * ext[1]);
      } else {
        Ewa e;
        ewa(cam, m, q, s, e);
        tz = e.tc[2];
        mx = cam.fx * e.tc[0] / tz + cam.cx;
        my = cam.fy * e.tc[1] / tz + cam.cy;
        valid = e.det > 0.0f && tz > NEAR_PLANE && tz < FAR_PLANE;
        const float det = e.det < DET_MIN ? DET_MIN : e.det;  // torch.clamp(min=): NaN stays NaN
        shp[3 * g] = e.G[3] / det;
        shp[3 * g + 1] = -(e.G[1] + e.G[2]) / 2.0f / det;
        shp[3 * g + 2] = e.G[0] / det;
        rx = std::ceil(RADIUS_SIGMAS * std::sqrt(e.G[0]));
        ry = std::ceil(RADIUS_SIGMAS * std::sqrt(e.G[3]));
      }
      m2[2 * g] = mx;
      m2[2 * g + 1] = my;
      dp[g] = tz;
      const bool inside = mx + rx > 0.0f && mx - rx < static_cast<float>(width) && my + ry > 0.0f &&
                          my - ry < static_cast<float>(height);
      const bool keep = valid && inside && std::isfinite(mx) && std::isfinite(my);
      rp[2 * g] = keep ? to_int32(rx) : 0;
      rp[2 * g + 1] = keep ? to_int32(ry) : 0;
      int32_t* rc = rect.data() + 4 * g;
      rc[0] = rc[1] = rc[2] = rc[3] = 0;
      if (rp[2 * g] > 0 && rp[2 * g + 1] > 0) {  // bin_tiles: floor/ceil of (mean +- radius) / tile_size
        const float tmx = mx / ts, tmy = my / ts;
        const float trx = static_cast<float>(rp[2 * g]) / ts, try_ = static_cast<float>(rp[2 * g + 1]) / ts;
        const auto tile_index = [](float v, int64_t hi) {  // clamp before the cast: no overflow
          return static_cast<int32_t>(clampf(v, 0.0f, static_cast<float>(hi)));
        };
        rc[0] = tile_index(std::floor(tmx - trx), tiles_x);
        rc[1] = tile_index(std::floor(tmy - try_), tiles_y);
        rc[2] = tile_index(std::ceil(tmx + trx), tiles_x);
        rc[3] = tile_index(std::ceil(tmy + try_), tiles_y);
        // depths of listed Gaussians are > NEAR_PLANE > 0: their float bits order like the values
        if (rc[0] < rc[2] && rc[1] < rc[3])
          mine.push_back(static_cast<uint64_t>(__builtin_bit_cast(uint32_t, tz)) << 32 | static_cast<uint32_t>(g));
      }
    }
#pragma omp barrier
#pragma omp single
    {
      size_t V = 0;
      for (int k = 0; k < nt; ++k) V += keys_of[k].size();
      keys.reserve(V);
      for (int k = 0; k < nt; ++k) keys.insert(keys.end(), keys_of[k].begin(), keys_of[k].end());
      scratch.resize(V);
      sorted = radix_sort_high32(keys.data(), scratch.data(), static_cast<int64_t>(V));
    }
    const int64_t V = static_cast<int64_t>(keys.size());
    const int64_t k_lo = V * me / nt, k_hi = V * (me + 1) / nt;
    int64_t* count = per_thread.data() + static_cast<size_t>(me) * T;
    for (int64_t k = k_lo; k < k_hi; ++k) {
      const int32_t* rc = rect.data() + 4 * static_cast<uint32_t>(sorted[k]);
      for (int32_t ty = rc[1]; ty < rc[3]; ++ty)
        for (int32_t tx = rc[0]; tx < rc[2]; ++tx) ++count[ty * tiles_x + tx];
    }
#pragma omp barrier
#pragma omp single
    {
      offs[0] = 0;
      for (int64_t t = 0; t < T; ++t) {  // thread k's entries of tile t start at offs[t] + its count
        int64_t total = 0;
        for (int k = 0; k < nt; ++k) {
          int64_t& c = per_thread[static_cast<size_t>(k) * T + t];
          const int64_t n = c;
          c = total;
          total += n;
        }
        offs[t + 1] = offs[t] + total;
      }
      flat_ids = torch::empty({offs[T]}, fopts.dtype(torch::kInt32));
    }
    int32_t* ids = flat_ids.data_ptr<int32_t>();
    for (int64_t k = k_lo; k < k_hi; ++k) {
      const uint32_t g = static_cast<uint32_t>(sorted[k]);
      const int32_t* rc = rect.data() + 4 * g;
      for (int32_t ty = rc[1]; ty < rc[3]; ++ty)
        for (int32_t tx = rc[0]; tx < rc[2]; ++tx) {
          const int64_t t = ty * tiles_x + tx;
          ids[offs[t] + count[t]++] = static_cast<int32_t>(g);
        }
    }
  }
  return {means2d, depths, radii, shape, tile_offsets, flat_ids};
}

// The gradient of project_forward's differentiable outputs w.r.t. the Gaussians: v_means2d [N, 2],
// v_depths [N], v_shape [N, 3] conics or [N, 9] ray transforms (row-major) -> v_means [N, 3],
// v_quats [N, 4] (through the normalisation), v_scales [N, 3]. The vector-Jacobian product of the
// reference's formulas, including the frustum clamp (no gradient to tx/tz where it clamps) and
// the det clamp; culled Gaussians are not special (as torch autograd through the reference), but a
// Gaussian whose incoming gradients are all zero gets exact zeros (no 0 * inf). One parallel loop
// over Gaussians, each writing only its own rows: deterministic, no atomics.
std::vector<torch::Tensor> project_backward(bool two_d, torch::Tensor means, torch::Tensor quats,
                                            torch::Tensor scales, torch::Tensor viewmat, torch::Tensor K,
                                            int64_t width, int64_t height, torch::Tensor v_means2d,
                                            torch::Tensor v_depths, torch::Tensor v_shape) {
  check_gaussians(means, quats, scales);
  const ProjCam cam = make_cam(viewmat, K, width, height);
  const int64_t N = means.size(0), NS = two_d ? 9 : 3;
  for (const auto* t : {&v_means2d, &v_depths, &v_shape})
    TORCH_CHECK(t->dtype() == torch::kFloat32 && t->is_contiguous() && t->size(0) == N,
                "incoming gradients must be contiguous float32 with N rows");
  TORCH_CHECK(v_means2d.numel() == 2 * N && v_depths.numel() == N && v_shape.numel() == NS * N,
              "incoming gradients: means2d [N, 2], depths [N], conics [N, 3] / ray transforms [N, 3, 3]");
  auto v_means = torch::zeros({N, 3}, means.options());
  auto v_quats = torch::zeros({N, 4}, means.options());
  auto v_scales = torch::zeros({N, 3}, means.options());
  const float* mp = means.data_ptr<float>();
  const float* qp = quats.data_ptr<float>();
  const float* sp = scales.data_ptr<float>();
  const float* vm2 = v_means2d.data_ptr<float>();
  const float* vd = v_depths.data_ptr<float>();
  const float* vsh = v_shape.data_ptr<float>();
  float* om = v_means.data_ptr<float>();
  float* oq = v_quats.data_ptr<float>();
  float* os = v_scales.data_ptr<float>();
  const float* R = cam.R;
#pragma omp parallel for schedule(static)  // the only parallel region: per Gaussian, independent
  for (int64_t g = 0; g < N; ++g) {
    const float* vs = vsh + NS * g;
    bool any = vm2[2 * g] != 0.0f || vm2[2 * g + 1] != 0.0f || vd[g] != 0.0f;
    for (int k = 0; k < NS; ++k) any = any || vs[k] != 0.0f;
    if (!any) continue;
    const float* m = mp + 3 * g;
    const float* q = qp + 4 * g;
    const float* s = sp + 3 * g;
    float v_tc[3] = {0.0f, 0.0f, 0.0f}, v_Mr[9], v_rot[9];
    const float *rot, *qn;
    float norm;
    Ewa e;
    RaySplat r;
    if (two_d) {
      ray_splat(cam, m, q, s, r);
      rot = r.rot, qn = r.qn, norm = r.norm;
      float v_Mk[9];
      for (int k = 0; k < 9; ++k) v_Mk[k] = vs[k];
      if (r.ok) {  // means2d_j = sum_i Mk[j][i] Mk[2][i] f_i, f_i = test_i / d, d = sum_i test_i Mk[2][i]^2
        const float test[3] = {1.0f, 1.0f, -1.0f};
        const float a0 = vm2[2 * g], a1 = vm2[2 * g + 1];
        float v_d = 0.0f;
        for (int i = 0; i < 3; ++i) {
          const float m0 = r.Mk[i], m1 = r.Mk[3 + i], m2i = r.Mk[6 + i];
          v_Mk[i] += a0 * m2i * r.f[i];
          v_Mk[3 + i] += a1 * m2i * r.f[i];
          v_Mk[6 + i] += (a0 * m0 + a1 * m1) * r.f[i];
          const float v_f = (a0 * m0 + a1 * m1) * m2i;
          v_d -= v_f * test[i] / (r.d * r.d);
        }
        for (int i = 0; i < 3; ++i) v_Mk[6 + i] += v_d * 2.0f * test[i] * r.Mk[6 + i];
      }
      // Mk = K T: v_T = K^T v_Mk (K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
      float v_T[9];
      for (int j = 0; j < 3; ++j) {
        v_T[j] = cam.fx * v_Mk[j];
        v_T[3 + j] = cam.fy * v_Mk[3 + j];
        v_T[6 + j] = cam.cx * v_Mk[j] + cam.cy * v_Mk[3 + j] + v_Mk[6 + j];
      }
      float v_RS[9];
      for (int i = 0; i < 3; ++i) {
        v_RS[3 * i] = v_T[3 * i];
        v_RS[3 * i + 1] = v_T[3 * i + 1];
        v_RS[3 * i + 2] = 0.0f;
        v_tc[i] = v_T[3 * i + 2];
      }
      v_tc[2] += vd[g];
      mul_atb(R, v_RS, v_Mr);  // RS = R Mr
    } else {
      ewa(cam, m, q, s, e);
      rot = e.rot, qn = e.qn, norm = e.norm;
      const float tx = e.tc[0], ty = e.tc[1], tz = e.tc[2], tz2 = tz * tz;
      const float* G = e.G;
      // conics (a, b, c) = (G11, -(G01 + G10) / 2, G00) / max(det, DET_MIN)
      const float va = vs[0], vb = vs[1], vc = vs[2];
      const float D = e.det < DET_MIN ? DET_MIN : e.det, D2 = D * D;
      float vG[4] = {vc / D, -vb / (2.0f * D), -vb / (2.0f * D), va / D};
      if (e.det >= DET_MIN) {  // the clamp passes the gradient where it does not clamp
        const float v_det = -va * G[3] / D2 + vb * (G[1] + G[2]) / (2.0f * D2) - vc * G[0] / D2;
        vG[0] += v_det * G[3];
        vG[3] += v_det * G[0];
        vG[1] -= v_det * G[2];
        vG[2] -= v_det * G[1];
      }
      // G = J Sc J^T: v_Sc = J^T vG J, v_J = vG J Sc^T + vG^T J Sc
      const float* J = e.J;
      const float* Sc = e.Sc;
      float v_Sc[9];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          v_Sc[3 * i + j] = J[i] * (vG[0] * J[j] + vG[1] * J[3 + j]) + J[3 + i] * (vG[2] * J[j] + vG[3] * J[3 + j]);
      float JS[6], JSt[6];  // J Sc and J Sc^T
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) {
          JS[3 * i + j] = J[3 * i] * Sc[j] + J[3 * i + 1] * Sc[3 + j] + J[3 * i + 2] * Sc[6 + j];
          JSt[3 * i + j] = J[3 * i] * Sc[3 * j] + J[3 * i + 1] * Sc[3 * j + 1] + J[3 * i + 2] * Sc[3 * j + 2];
        }
      float v_J[6];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
          v_J[3 * i + j] = vG[2 * i] * JSt[j] + vG[2 * i + 1] * JSt[3 + j] + vG[i] * JS[j] + vG[2 + i] * JS[3 + j];
      // J = [[fx/tz, 0, -fx txc/tz^2], [0, fy/tz, -fy tyc/tz^2]], txc = tz clamp(tx/tz)
      const float v_txc = -cam.fx / tz2 * v_J[2], v_tyc = -cam.fy / tz2 * v_J[5];
      float v_tz = -cam.fx / tz2 * v_J[0] - cam.fy / tz2 * v_J[4] + 2.0f * cam.fx * e.txc / (tz2 * tz) * v_J[2] +
                   2.0f * cam.fy * e.tyc / (tz2 * tz) * v_J[5];
      v_tz += clampf(e.u, -cam.lim_x_neg, cam.lim_x_pos) * v_txc + clampf(e.v, -cam.lim_y_neg, cam.lim_y_pos) * v_tyc;
      if (e.u >= -cam.lim_x_neg && e.u <= cam.lim_x_pos) {  // clamp passes the gradient inside [lo, hi]
        const float v_u = tz * v_txc;  // u = tx / tz
        v_tc[0] += v_u / tz;
        v_tz -= v_u * tx / tz2;
      }
      if (e.v >= -cam.lim_y_neg && e.v <= cam.lim_y_pos) {
        const float v_v = tz * v_tyc;
        v_tc[1] += v_v / tz;
        v_tz -= v_v * ty / tz2;
      }
      // means2d = (fx tx / tz + cx, fy ty / tz + cy); depth = tz
      const float a0 = vm2[2 * g], a1 = vm2[2 * g + 1];
      v_tc[0] += cam.fx / tz * a0;
      v_tc[1] += cam.fy / tz * a1;
      v_tz += -cam.fx * tx / tz2 * a0 - cam.fy * ty / tz2 * a1 + vd[g];
      v_tc[2] = v_tz;
      // Sc = R Sigma R^T: v_Sigma = R^T v_Sc R; Sigma = Mr Mr^T: v_Mr = (v_Sigma + v_Sigma^T) Mr
      float tmp[9], v_Sig[9], v_Sym[9];
      mul_atb(R, v_Sc, tmp);
      mul_ab(tmp, R, v_Sig);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) v_Sym[3 * i + j] = v_Sig[3 * i + j] + v_Sig[3 * j + i];
      mul_ab(v_Sym, e.Mr, v_Mr);
    }
    // Mr = R(q) diag(s)
    float v_s[3] = {0.0f, 0.0f, 0.0f};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        v_rot[3 * i + j] = v_Mr[3 * i + j] * s[j];
        v_s[j] += v_Mr[3 * i + j] * rot[3 * i + j];
      }
    quat_rotmat_vjp(qn, norm, v_rot, oq + 4 * g);
    for (int j = 0; j < 3; ++j) {
      os[3 * g + j] = v_s[j];
      om[3 * g + j] = R[j] * v_tc[0] + R[3 + j] * v_tc[1] + R[6 + j] * v_tc[2];  // tc = R m + t
    }
  }
  return {v_means, v_quats, v_scales};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("render_forward", &render_forward, "render features at pixels");
  m.def("render_backward", &render_backward, "gradients of render w.r.t. screen-space parameters and features");
  m.def("trace_dense", &trace_dense, "trace a D-dim pixel signal onto Gaussians");
  m.def("trace_labels", &trace_labels, "trace an integer label map into top-k histograms (dense or as entries)");
  m.def("project_forward", &project_forward, "project Gaussians into a camera and bin them into tiles");
  m.def("project_backward", &project_backward, "gradients of the projection w.r.t. means, quats, scales");
  m.def("num_threads", &num_threads, "OpenMP threads");
  // the widest vector extension this build was compiled for (gs_core/engine/isa.py's variants)
#if defined(__AVX512F__)
  m.attr("isa") = "avx512";
#elif defined(__AVX2__)
  m.attr("isa") = "avx2";
#else
  m.attr("isa") = "portable";
#endif
  m.attr("vector_width") = vec::W;        // floats per vector in this build's kernels
  m.attr("fused_madd") = vec::FUSED;      // multiply-adds round once (FMA) or twice
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;               // built without OpenMP: every kernel runs on one thread
#endif
}
