// race.cpp: the shadow memory and the __tsan_* hooks of race.h.
#include "cuda_emu.h"

#include <cstdint>
#include <map>
#include <vector>

namespace emu::race {
namespace {

enum class Access { Read, Write, Atomic };

constexpr uint32_t kNone = ~0u;

// One word of shared memory within the current barrier interval. Threads are
// linear indices in the block; epochs are the warp's collective count.
struct SharedCell {
    uint32_t interval = 0;
    uint32_t writer = kNone, writer_epoch = 0;
    uint32_t reader[2] = {kNone, kNone}, reader_epoch[2] = {0, 0};
    bool writer_atomic = false;
};

// The last write of one device word.
struct DeviceCell {
    uint32_t launch = 0, block = 0, interval = 0, thread = kNone, epoch = 0;
    bool atomic = false;
};

struct Buffer {
    size_t bytes;
    std::vector<DeviceCell> cells;  // allocated at the first watched write
};

struct Checker {
    uintptr_t static_lo = 0, static_bytes = 0, dynamic_lo = 0, dynamic_bytes = 0;
    std::vector<SharedCell> shared;  // static words, then dynamic words
    std::vector<uint32_t> warp_epoch;
    uint32_t interval = 1, launch = 0, block = 0;
    std::map<uintptr_t, Buffer> buffers;
    uintptr_t last_base = 0, last_bytes = 0;  // the buffer `last` points to
    Buffer* last = nullptr;
};

EMU_UNTRACKED Checker& checker() {
    static Checker c;
    return c;
}

// Armed on the OS thread that runs a launch (launches are serialised by
// emu_api's mutex; other test threads run unchecked host code meanwhile).
__attribute__((tls_model("initial-exec"))) thread_local bool armed = false;
// Set while the checker runs: the library code it calls (std::map, std::string)
// is instrumented too, and its accesses are not the kernel's.
__attribute__((tls_model("initial-exec"))) thread_local bool checking = false;

const char* verb(Access a) {
    return a == Access::Read ? "reads" : a == Access::Write ? "writes" : "atomically updates";
}
const char* past(Access a) {
    return a == Access::Read ? "read" : a == Access::Write ? "wrote" : "atomically updated";
}

std::string thread_name(uint32_t linear) {
    const unsigned x = blockDim.x, xy = blockDim.x * blockDim.y;
    return "thread (" + std::to_string(linear % x) + "," + std::to_string(linear / x % blockDim.y) + "," +
           std::to_string(linear / xy) + ")";
}
std::string block_name(uint32_t linear) {
    const unsigned x = gridDim.x, xy = gridDim.x * gridDim.y;
    return "block (" + std::to_string(linear % x) + "," + std::to_string(linear / x % gridDim.y) + "," +
           std::to_string(linear / xy) + ")";
}

EMU_UNTRACKED uint32_t current_thread() {
    return current_launch()->current;
}

// Whether an earlier access by `other` (at its warp's epoch `epoch`) is
// unordered with the current thread's access in the same barrier interval;
// sets `in_warp` when only lockstep would order them.
EMU_UNTRACKED bool unordered(uint32_t other, uint32_t epoch, bool& in_warp) {
    const uint32_t me = current_thread();
    if (other == kNone || other == me) return false;
    in_warp = other / 32 == me / 32;
    return !in_warp || epoch == checker().warp_epoch[me / 32];
}

[[noreturn]] void report_shared(Access now, Access before, uint32_t other, bool in_warp, const char* space,
                                uintptr_t offset) {
    std::string what = std::string(verb(now)) + " " + space + " shared memory + " + std::to_string(offset) +
                       " bytes, which " + thread_name(other);
    if (in_warp)
        fail("warp-level race: " + what + " of the same warp " + past(before) +
             " with no __syncwarp, shuffle or vote between them (ordered only by lockstep)");
    fail("shared-memory race: " + what + " " + past(before) + " in the same barrier interval (no __syncthreads between them)");
}

EMU_UNTRACKED void shared_word(SharedCell& cell, Access a, const char* space, uintptr_t offset) {
    Checker& c = checker();
    if (cell.interval != c.interval) cell = SharedCell{c.interval};
    const uint32_t me = current_thread(), epoch = c.warp_epoch[me / 32];
    bool in_warp = false;
    const Access writer_kind = cell.writer_atomic ? Access::Atomic : Access::Write;
    const bool both_atomic = a == Access::Atomic && cell.writer_atomic;
    if (!both_atomic && unordered(cell.writer, cell.writer_epoch, in_warp))
        report_shared(a, writer_kind, cell.writer, in_warp, space, offset);
    if (a == Access::Read) {
        int slot = cell.reader[0] == kNone || cell.reader[0] == me ? 0 : 1;
        cell.reader[slot] = me;
        cell.reader_epoch[slot] = epoch;
        return;
    }
    for (int r = 0; r < 2; ++r)
        if (unordered(cell.reader[r], cell.reader_epoch[r], in_warp))
            report_shared(a, Access::Read, cell.reader[r], in_warp, space, offset);
    cell.writer = me;
    cell.writer_epoch = epoch;
    cell.writer_atomic = a == Access::Atomic;
}

EMU_UNTRACKED void device_word(DeviceCell& cell, Access a, size_t buffer_bytes, uintptr_t offset) {
    Checker& c = checker();
    const uint32_t me = current_thread();
    const bool both_atomic = a == Access::Atomic && cell.atomic;
    if (cell.launch == c.launch && !both_atomic) {
        bool in_warp = false;
        const bool other_block = cell.block != c.block;
        if (other_block || (cell.interval == c.interval && unordered(cell.thread, cell.epoch, in_warp))) {
            std::string where = "byte " + std::to_string(offset) + " of a device buffer of " +
                                std::to_string(buffer_bytes) + " bytes";
            std::string who = thread_name(cell.thread) + (other_block ? " of " + block_name(cell.block) : "");
            fail("global-memory race: " + std::string(verb(a)) + " " + where + ", which " + who + " " +
                 (cell.atomic ? "atomically updated" : "wrote") + " in the same launch" +
                 (other_block ? " (write-write between blocks without atomics)"
                  : in_warp   ? " (same warp, ordered only by lockstep)"
                              : " (no __syncthreads between them)"));
        }
    }
    cell = DeviceCell{c.launch, c.block, c.interval, me, c.warp_epoch[me / 32], a == Access::Atomic};
}

EMU_UNTRACKED void check_access(const void* p, size_t n, Access a) {
    Checker& c = checker();
    const auto addr = reinterpret_cast<uintptr_t>(p);
    if (addr - c.static_lo < c.static_bytes) {
        const uintptr_t off = addr - c.static_lo;
        for (uintptr_t w = off / 4; w <= (off + n - 1) / 4 && w * 4 < c.static_bytes; ++w)
            shared_word(c.shared[w], a, "static", w * 4);
        return;
    }
    if (addr - c.dynamic_lo < c.dynamic_bytes) {
        const uintptr_t off = addr - c.dynamic_lo, first = (c.static_bytes + 3) / 4;
        for (uintptr_t w = off / 4; w <= (off + n - 1) / 4 && w * 4 < c.dynamic_bytes; ++w)
            shared_word(c.shared[first + w], a, "dynamic", w * 4);
        return;
    }
    if (a == Access::Read) return;  // device memory: write-write only
    if (addr - c.last_base >= c.last_bytes) {  // most writes go to the last buffer written
        auto it = c.buffers.upper_bound(addr);
        if (it == c.buffers.begin()) return;
        --it;
        if (addr - it->first >= it->second.bytes) return;  // a stack or host address
        c.last_base = it->first;
        c.last_bytes = it->second.bytes;
        c.last = &it->second;
    }
    Buffer& b = *c.last;
    const uintptr_t off = addr - c.last_base;
    if (b.cells.empty()) b.cells.resize((b.bytes + 3) / 4);
    for (uintptr_t w = off / 4; w <= (off + n - 1) / 4 && w < b.cells.size(); ++w)
        device_word(b.cells[w], a, b.bytes, w * 4);
}

EMU_UNTRACKED void access(const void* p, size_t n, Access a) {
    if (!armed || checking || n == 0) return;
    checking = true;
    check_access(p, n, a);  // a report leaves this fiber for good, with `checking` set
    checking = false;
}

}  // namespace

EMU_UNTRACKED void watch_buffer(const void* base, size_t bytes) {
    std::lock_guard<std::mutex> lock(launch_mutex());
    Checker& c = checker();
    c.buffers[reinterpret_cast<uintptr_t>(base)] = Buffer{bytes, {}};
    c.last_bytes = 0;  // a buffer of the same address may have been replaced
}
EMU_UNTRACKED void unwatch_buffer(const void* base) {
    std::lock_guard<std::mutex> lock(launch_mutex());
    Checker& c = checker();
    c.buffers.erase(reinterpret_cast<uintptr_t>(base));
    c.last_bytes = 0;  // `last` may have been this one
}

EMU_UNTRACKED void begin_launch(const void* dynamic_shared, size_t dynamic_bytes, unsigned threads_per_block) {
    Checker& c = checker();
    c.static_lo = reinterpret_cast<uintptr_t>(__start_cf_emu_shared);
    c.static_bytes = __start_cf_emu_shared ? static_cast<uintptr_t>(__stop_cf_emu_shared - __start_cf_emu_shared) : 0;
    c.dynamic_lo = reinterpret_cast<uintptr_t>(dynamic_shared);
    c.dynamic_bytes = dynamic_bytes;
    const size_t words = (c.static_bytes + 3) / 4 + (dynamic_bytes + 3) / 4;
    if (c.shared.size() < words) c.shared.resize(words);
    c.warp_epoch.assign((threads_per_block + 31) / 32, 0);
    ++c.launch;
    armed = true;
}
EMU_UNTRACKED void end_launch() {
    armed = false;
    checking = false;
}
EMU_UNTRACKED void begin_block(unsigned linear_block) {
    Checker& c = checker();
    c.block = linear_block;
    ++c.interval;
}
EMU_UNTRACKED void barrier_passed() {
    ++checker().interval;
}
EMU_UNTRACKED void warp_passed(unsigned warp) {
    ++checker().warp_epoch[warp];
}
EMU_UNTRACKED void atomic_update(const void* p, size_t bytes) {
    access(p, bytes, Access::Atomic);
}

}  // namespace emu::race

// ---- the hooks GCC's -fsanitize=thread calls; no TSan runtime is linked ----
using emu::race::Access;
#define EMU_HOOK extern "C" EMU_UNTRACKED void
EMU_HOOK __tsan_init() {}
EMU_HOOK __tsan_func_entry(void*) {}
EMU_HOOK __tsan_func_exit() {}
EMU_HOOK __tsan_vptr_update(void**, void*) {}
EMU_HOOK __tsan_vptr_read(void**) {}
EMU_HOOK __tsan_read_range(void* p, unsigned long n) { emu::race::access(p, n, Access::Read); }
EMU_HOOK __tsan_write_range(void* p, unsigned long n) { emu::race::access(p, n, Access::Write); }
#define EMU_SIZED_HOOKS(N)                                                                   \
    EMU_HOOK __tsan_read##N(void* p) { emu::race::access(p, N, Access::Read); }              \
    EMU_HOOK __tsan_write##N(void* p) { emu::race::access(p, N, Access::Write); }            \
    EMU_HOOK __tsan_unaligned_read##N(void* p) { emu::race::access(p, N, Access::Read); }    \
    EMU_HOOK __tsan_unaligned_write##N(void* p) { emu::race::access(p, N, Access::Write); }  \
    EMU_HOOK __tsan_volatile_read##N(void* p) { emu::race::access(p, N, Access::Read); }     \
    EMU_HOOK __tsan_volatile_write##N(void* p) { emu::race::access(p, N, Access::Write); }
EMU_SIZED_HOOKS(1)
EMU_SIZED_HOOKS(2)
EMU_SIZED_HOOKS(4)
EMU_SIZED_HOOKS(8)
EMU_SIZED_HOOKS(16)
// The acquire load of a function-local static's guard byte.
extern "C" EMU_UNTRACKED char __tsan_atomic8_load(const volatile char* p, int) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
