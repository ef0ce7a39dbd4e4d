// race.h: the emulator's race checker, what compute-sanitizer's racecheck does
// on a GPU. build.rs compiles the emulator with -fsanitize=thread, which makes
// the compiler call __tsan_read4/__tsan_write4/... before every memory access
// of the kernels; race.cpp defines those hooks itself (no TSan runtime is
// linked) and keeps a shadow cell per 4-byte word of shared memory and of the
// device buffers. A hazard ends the launch with a report naming both threads,
// the buffer and offset, and the two kinds of access:
//  * shared memory: two threads, one word, one barrier interval, at least one
//    write, not both atomic;
//  * the same within one warp with no __syncwarp/shuffle/vote between the two
//    accesses: ordered only by lockstep, which independent thread scheduling
//    (since Volta) does not promise;
//  * device memory: two threads (of any blocks) writing one word in one launch,
//    unordered by a barrier of their block, not both atomic.
// Words are 4 bytes: kernels here are f32/i32, so two threads writing different
// bytes of one word would be reported as well.
#pragma once

#include <cstddef>

// For the emulator's own code: its bookkeeping is not kernel memory traffic.
#define EMU_UNTRACKED __attribute__((no_sanitize("thread")))

namespace emu::race {

// Device buffers whose words are watched (cf_emu_alloc / cf_emu_free).
void watch_buffer(const void* base, size_t bytes);
void unwatch_buffer(const void* base);

// The scheduler's events. begin_launch arms the checker on the calling OS
// thread only; threads that never launch are never checked.
void begin_launch(const void* dynamic_shared, size_t dynamic_bytes, unsigned threads_per_block);
void end_launch();
void begin_block(unsigned linear_block);
void barrier_passed();
void warp_passed(unsigned warp);

// Atomics are not instrumented; they say what they touched.
void atomic_update(const void* p, size_t bytes);

}  // namespace emu::race
