/* The learner's arithmetic-bound loops, compiled for several instruction sets.
 *
 * On x86-64 Linux with GCC each function here is built for AVX-512, AVX2 and
 * the baseline, and the loader picks the widest the CPU has. The clones give
 * bit-identical results: each element's operations and their order are the
 * same (no sum is reordered), and setup.py turns off fused multiply-adds. */
#ifndef FASTPG_WIDE_LOOPS_H
#define FASTPG_WIDE_LOOPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTPG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTPG_CLONES
#endif

/* Adam's step on n weights: a square root and a division per weight; with clear, g is zeroed as it is
 * read (the square root and division bound the loop, so the stores come almost free, where a separate
 * pass would stream the whole gradient again). Returns 1 when every new w, m and v is finite, which spares the learner a pass over the arrays to check them. A double is NaN or
 * infinite exactly when its exponent bits are all ones; testing the bits as integers keeps the loop
 * vectorised (setup.py's -fno-strict-aliasing makes the reads well defined). */
#define FASTPG_EXPONENT 0x7ff0000000000000ULL
FASTPG_CLONES static int adam_step(double *restrict w, double *restrict g, double *restrict m,
                                   double *restrict v, ptrdiff_t n, double learning_rate, double beta1,
                                   double beta2, double eps, double m_scale, double v_scale, int clear)
{
    const uint64_t *w_bits = (const uint64_t *)w, *m_bits = (const uint64_t *)m, *v_bits = (const uint64_t *)v;
    uint64_t non_finite = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g[i] * g[i]);
        w[i] -= learning_rate * (m[i] * m_scale) / (sqrt(v[i] * v_scale) + eps);
        non_finite |= ((w_bits[i] & FASTPG_EXPONENT) == FASTPG_EXPONENT)
                      | ((m_bits[i] & FASTPG_EXPONENT) == FASTPG_EXPONENT)
                      | ((v_bits[i] & FASTPG_EXPONENT) == FASTPG_EXPONENT);
        if (clear)
            g[i] = 0.0;
    }
    return non_finite == 0;
}

/* The heads of ROW_GROUP rows at once: logits[r * A + a] = b_pi[a] + W_pi[a] . h_r and values[r] =
 * b_v + w_v . h_r, where h_r = hs + r * H, for rows r < n (n <= ROW_GROUP). Each dot product adds its
 * terms one by one in the order of j (a vectorised sum would reorder them), so one row alone is a chain
 * of dependent additions that leaves the CPU idle; the group's rows run as independent chains side by
 * side. A group of fewer rows repeats its last row in the missing places and drops its results. */
#define ROW_GROUP 8
static void group_heads(const double *W_pi, const double *b_pi, const double *w_v, double b_v, ptrdiff_t H,
                        ptrdiff_t A, const double *hs, ptrdiff_t n, double *logits, double *values)
{
    const double *h[ROW_GROUP];
    for (int r = 0; r < ROW_GROUP; r++)
        h[r] = hs + (r < n ? r : n - 1) * H;
    for (ptrdiff_t a = 0; a <= A; a++) {  /* a = A is the value head */
        const double *weights = a < A ? W_pi + a * H : w_v;
        double sum[ROW_GROUP];
        for (int r = 0; r < ROW_GROUP; r++)
            sum[r] = a < A ? b_pi[a] : b_v;
        for (ptrdiff_t j = 0; j < H; j++)
            for (int r = 0; r < ROW_GROUP; r++)
                sum[r] += weights[j] * h[r][j];
        for (ptrdiff_t r = 0; r < n; r++) {
            if (a < A)
                logits[r * A + a] = sum[r];
            else
                values[r] = sum[r];
        }
    }
}

/* Eight doubles in one vector (one AVX-512 register, two AVX2 ones); aligned(8) lets it load from
 * any double. A pass of add_signed_columns keeps PASS_BLOCKS of them in registers: 12 of AVX2's 16. */
typedef double fastpg_v8d __attribute__((vector_size(64), aligned(8)));
#define PASS_BLOCKS 6

/* h[:8 * blocks] += signs[k] * (W + indices[k] * stride)[:8 * blocks] for k in order, with h held in
 * registers across the entries, so that each entry costs loads of its vector and no stores (blocks is a
 * constant once inlined, so the loops unroll and acc stays in registers). */
static inline __attribute__((always_inline)) void add_signed_pass(double *restrict h, const double *restrict W,
                                                                  ptrdiff_t stride, const int16_t *indices,
                                                                  const int8_t *signs, ptrdiff_t nnz, int blocks)
{
    fastpg_v8d acc[PASS_BLOCKS];
    for (int b = 0; b < blocks; b++)
        acc[b] = *(const fastpg_v8d *)(h + 8 * b);
    for (ptrdiff_t k = 0; k < nnz; k++) {
        const fastpg_v8d *vector = (const fastpg_v8d *)(W + (ptrdiff_t)indices[k] * stride);
        const double s = (double)signs[k];
        const fastpg_v8d sign = {s, s, s, s, s, s, s, s};
        for (int b = 0; b < blocks; b++)
            acc[b] += sign * vector[b];
    }
    for (int b = 0; b < blocks; b++)
        *(fastpg_v8d *)(h + 8 * b) = acc[b];
}

/* h[:n] += signs[k] * (W + indices[k] * stride)[:n] for k = 0 .. nnz - 1 in order. The n doubles go
 * in passes of 8 * PASS_BLOCKS, then of 8, then one by one: each h[j] still adds its terms in the
 * order of k, so the result is the same as one pass over all of h, but h stays in registers (the
 * learner's forwards ran 1.2-1.3 times faster here than when h was stored after every column). */
static inline __attribute__((always_inline)) void add_signed_vectors(double *restrict h, const double *restrict W,
                                                                     ptrdiff_t n, ptrdiff_t stride,
                                                                     const int16_t *indices, const int8_t *signs,
                                                                     ptrdiff_t nnz)
{
    ptrdiff_t j = 0;
    for (; j + 8 * PASS_BLOCKS <= n; j += 8 * PASS_BLOCKS)
        add_signed_pass(h + j, W + j, stride, indices, signs, nnz, PASS_BLOCKS);
    for (; j + 8 <= n; j += 8)
        add_signed_pass(h + j, W + j, stride, indices, signs, nnz, 1);
    for (; j < n; j++)
        for (ptrdiff_t k = 0; k < nnz; k++)
            h[j] += (double)signs[k] * W[(ptrdiff_t)indices[k] * stride + j];
}

/* h[:H] += signs[k] * (column indices[k] of W)[:H] for k = 0 .. nnz - 1 in order: a row's hidden layer.
 * W is Fortran-ordered (H, n_inputs), so a column is H contiguous doubles. */
FASTPG_CLONES static void add_signed_columns(double *restrict h, const double *restrict W, ptrdiff_t H,
                                             const int16_t *indices, const int8_t *signs, ptrdiff_t nnz)
{
    add_signed_vectors(h, W, H, H, indices, signs, nnz);
}

/* The sparse part of a backward over a chunk of rows, one column at a time: for each q < n_columns,
 * (column columns[q] of G)[:n] += signs[p] * (row rows[p] of D)[:n] for the pairs p in
 * starts[q] .. starts[q + 1] - 1, in order. Column c starts at G + c * stride, row r at D + r * row_stride.
 * When each column's pairs are in the order of its rows, every entry of G adds the same terms in the same
 * order as a loop over the rows scattering into their columns, so the sums are bit for bit the same; but
 * a column is loaded and stored once per chunk instead of once per row that lists it. A learner thread
 * passes G and D offset to its slice of the hidden units, and n the slice's length. */
FASTPG_CLONES static void scatter_columns(double *restrict G, ptrdiff_t n, ptrdiff_t stride,
                                          const double *restrict D, ptrdiff_t row_stride,
                                          const int32_t *columns, const int32_t *starts, ptrdiff_t n_columns,
                                          const int16_t *rows, const int8_t *signs)
{
    for (ptrdiff_t q = 0; q < n_columns; q++)
        add_signed_vectors(G + (ptrdiff_t)columns[q] * stride, D, n, row_stride, rows + starts[q], signs + starts[q],
                           starts[q + 1] - starts[q]);
}

#endif
