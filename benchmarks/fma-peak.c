/*
 * The fp32 arithmetic peak of this machine, measured: each thread runs 12
 * independent chains of fused multiply-adds on the widest vectors the compiler
 * targets (-march=native), enough to keep every FMA pipe busy whatever its
 * latency. Prints one line: threads and GFLOP/s (best of 5 runs).
 *
 *   gcc -O3 -march=native -pthread fma-peak.c -o fma-peak && ./fma-peak 2
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM _mm512_reduce_add_ps
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v) { float f[8]; _mm256_storeu_ps(f, v); return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7]; }
#endif

#define CHAINS 12
static const long ITERATIONS = 100000000;

static void *chains(void *out) {
  vec acc[CHAINS];
  for (int c = 0; c < CHAINS; c++) acc[c] = SET1(c * 1e-3f);
  const vec a = SET1(0.999999f), b = SET1(1e-7f);
  for (long i = 0; i < ITERATIONS; i++) {
    for (int c = 0; c < CHAINS; c++) acc[c] = FMA(acc[c], a, b);
  }
  vec total = acc[0];
  for (int c = 1; c < CHAINS; c++) total = ADD(total, acc[c]);
  *(float *)out = SUM(total); /* used, so the loop is not optimized away */
  return NULL;
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 1;
  pthread_t ids[64];
  float sink[64];
  double best = 0;
  for (int run = 0; run < 5; run++) {
    const double start = seconds();
    for (int t = 0; t < threads; t++) pthread_create(&ids[t], NULL, chains, &sink[t]);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    const double gflops = threads * (double)ITERATIONS * CHAINS * LANES * 2 / (seconds() - start) / 1e9;
    if (gflops > best) best = gflops;
  }
  printf("%d %.1f %g\n", threads, best, sink[0]);
  return 0;
}
