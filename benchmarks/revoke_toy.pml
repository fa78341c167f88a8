/*
 * The toy revoke model's Promela twin (benchmarks/revoke_toy.py is the Python one).
 *
 * One buffer LIVE -> REVOKING -> REVOKED -> REUSED; N importers, each UNMAPPED / MAPPED /
 * INVALIDATED with a DMA-in-flight bit. Every transition is one d_step, every process sits at
 * its loop head between steps, and nmapped / ndma are functions of the arrays, so SPIN stores
 * exactly one state per valuation of (buf, map, dma): 3^N + 5^N + 2^N + 2^N with the guard
 * (1,973,832 for N = 9). Compile with -DSAFETY -DNOREDUCE (partial-order reduction would store
 * fewer states); -DNOGUARD drops the DMA check on finish, and the monitor then fails.
 *
 *   spin -DN=9 -a revoke_toy.pml && gcc -O2 -DSAFETY -DNOREDUCE -o pan pan.c && ./pan -w24 -m100000
 */
#ifndef N
#define N 9
#endif

#define LIVE 0
#define REVOKING 1
#define REVOKED 2
#define REUSED 3

#define UNMAPPED 0
#define MAPPED 1
#define INVALIDATED 2

#ifdef NOGUARD
#define FINISH_GUARD (nmapped == 0)
#else
#define FINISH_GUARD (nmapped == 0 && ndma == 0)
#endif

byte buf = LIVE;
byte map[N];
bit dma[N];
byte nmapped;   /* importers MAPPED */
byte ndma;      /* importers with DMA in flight */

active proctype buffer() {
end:
  do
  :: d_step { buf == LIVE -> buf = REVOKING }
  :: d_step { buf == REVOKING && FINISH_GUARD -> buf = REVOKED }
  :: d_step { buf == REVOKED -> buf = REUSED }
  od
}

active [N] proctype importer() {
  byte i = _pid - 1;
end:
  do
  :: d_step { buf == LIVE && map[i] == UNMAPPED -> map[i] = MAPPED; nmapped++ }
  :: d_step { map[i] == MAPPED && !dma[i] -> dma[i] = 1; ndma++ }
  :: d_step { dma[i] -> dma[i] = 0; ndma-- }
  :: d_step { map[i] == MAPPED && !dma[i] -> map[i] = UNMAPPED; nmapped-- }
  :: d_step { buf == REVOKING && map[i] == MAPPED -> map[i] = INVALIDATED; nmapped-- }
  od
}

/* The invariant: never REUSED while a DMA is in flight. Blocked (one fixed state) until the
   invariant fails, so it adds no states. */
active proctype monitor() {
end:
  atomic { buf == REUSED && ndma > 0 -> assert(false) }
}
