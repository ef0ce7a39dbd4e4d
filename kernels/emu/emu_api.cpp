// emu_api.cpp: the C interface the Rust tests use to run the kernels in the
// emulator: guarded allocations and a cuLaunchKernel-like launch by name.
#define CONVFORMER_EMU
#include "../adamw.cu"
#include "../attention.cu"
#include "../conv1d.cu"
#include "../dropout.cu"
#include "../elementwise.cu"
#include "../gemm.cu"
#include "../layernorm.cu"
#include "../loss.cu"
#include "../pool.cu"
#include "../softmax.cu"
#include "selftest.cu"

#include <cstdio>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

namespace {

// Guard zones on both sides of each allocation, filled with the 32-bit word
// 0x7FA5A5A5: a NaN, so a read out of bounds poisons the result, and distinct
// from the data poison (all ones), so a write out of bounds is told apart.
// 64 KiB per side catches a wrong row stride or block index, not only an
// off-by-one.
constexpr size_t kGuard = 64 * 1024;
constexpr unsigned kGuardWord = 0x7FA5A5A5u;

void fill_guard(unsigned char* p) {
    for (size_t i = 0; i < kGuard; i += 4) std::memcpy(p + i, &kGuardWord, 4);
}

// Offset of the first byte of the guard at `p` that was overwritten, or kGuard.
size_t first_damage(const unsigned char* p) {
    for (size_t i = 0; i < kGuard; i += 4)
        if (std::memcmp(p + i, &kGuardWord, 4) != 0) return i;
    return kGuard;
}

struct Allocation {
    unsigned char* base;
    size_t bytes;
};

std::mutex& emu_mutex() {
    static std::mutex m;
    return m;
}
std::map<unsigned long long, Allocation>& allocations() {
    static std::map<unsigned long long, Allocation> a;
    return a;
}

// Copies the kernel's parameters out of `params` (cuLaunchKernel layout: one
// pointer per argument) and returns the kernel call.
template <typename... Args, size_t... I>
std::function<void()> bind_impl(void (*kernel)(Args...), void** params, std::index_sequence<I...>) {
    std::tuple<std::decay_t<Args>...> args{*static_cast<std::decay_t<Args>*>(params[I])...};
    return [kernel, args]() { std::apply(kernel, args); };
}
template <typename... Args>
std::function<void()> bind(void (*kernel)(Args...), void** params) {
    return bind_impl(kernel, params, std::index_sequence_for<Args...>{});
}

// One letter per parameter type, to check the caller's arguments against the
// kernel's signature: p pointer, i int, l long long, u unsigned, f float.
template <typename T>
constexpr char type_code() {
    using D = std::decay_t<T>;
    if constexpr (std::is_pointer_v<D>) return 'p';
    else if constexpr (std::is_same_v<D, int>) return 'i';
    else if constexpr (std::is_same_v<D, long long>) return 'l';
    else if constexpr (std::is_same_v<D, unsigned>) return 'u';
    else if constexpr (std::is_same_v<D, float>) return 'f';
    else return '?';
}
template <typename... Args>
std::string signature(void (*)(Args...)) {
    return std::string{type_code<Args>()...};
}

struct Binder {
    std::string signature;
    std::function<std::function<void()>(void**)> bind;
};
#define KERNEL(name) {#name, Binder{signature(&name), [](void** p) { return bind(&name, p); }}}
const std::map<std::string, Binder>& kernels() {
    static const std::map<std::string, Binder> table = {
        KERNEL(adamw_step),           KERNEL(sum_squares),        KERNEL(attention_fwd_smem),
        KERNEL(attention_fwd_online), KERNEL(attention_bwd_query), KERNEL(attention_bwd_key),
        KERNEL(conv1d_fwd),           KERNEL(conv1d_fwd_cin1),    KERNEL(conv1d_bwd_input),
        KERNEL(conv1d_bwd_weight),    KERNEL(conv1d_bwd_bias),    KERNEL(dropout_apply),
        KERNEL(relu_fwd),             KERNEL(relu_bwd),           KERNEL(gelu_fwd),
        KERNEL(gelu_bwd),             KERNEL(add),                KERNEL(mul),
        KERNEL(scale),                KERNEL(add_bias),           KERNEL(column_sum),
        KERNEL(sgemm_tiled),          KERNEL(layernorm_fwd),      KERNEL(layernorm_bwd_input),
        KERNEL(layernorm_bwd_params), KERNEL(loss_fwd),           KERNEL(loss_bwd),
        KERNEL(mean_pool_fwd),        KERNEL(mean_pool_bwd),      KERNEL(softmax_fwd),
        KERNEL(softmax_bwd),          KERNEL(permute4),
        // the emulator's own tests (kernels/emu/selftest.cu)
        KERNEL(selftest_warp_ops),    KERNEL(selftest_atomics),   KERNEL(selftest_neighbour),
        KERNEL(selftest_exited_lane), KERNEL(selftest_divergent_barrier), KERNEL(selftest_unwritten_shared),
    };
    return table;
}

void write_error(char* err, size_t len, const std::string& msg) {
    if (len == 0) return;
    std::snprintf(err, len, "%s", msg.c_str());
}

}  // namespace

extern "C" {

// A device buffer of `bytes`, its contents poisoned with NaN (all-ones bytes),
// between two guard zones. Returns its address (0 on failure).
unsigned long long cf_emu_alloc(size_t bytes) {
    std::lock_guard<std::mutex> lock(emu_mutex());
    auto* base = new (std::nothrow) unsigned char[bytes + 2 * kGuard];
    if (!base) return 0;
    fill_guard(base);
    std::memset(base + kGuard, 0xff, bytes);
    fill_guard(base + kGuard + bytes);
    auto addr = reinterpret_cast<unsigned long long>(base + kGuard);
    allocations()[addr] = Allocation{base, bytes};
    emu::race::watch_buffer(base + kGuard, bytes);
    return addr;
}

void cf_emu_free(unsigned long long addr) {
    std::lock_guard<std::mutex> lock(emu_mutex());
    auto it = allocations().find(addr);
    if (it == allocations().end()) return;
    emu::race::unwatch_buffer(it->second.base + kGuard);
    delete[] it->second.base;
    allocations().erase(it);
}

// Launches kernel `name` like cuLaunchKernel, then checks every guard zone.
// Returns 0, or 1 with a message in `err`.
// `signature` spells the argument types (see type_code) and must match the kernel.
int cf_emu_launch(const char* name, const char* signature, const unsigned* grid, const unsigned* block,
                  unsigned shared_bytes, void** params, char* err, size_t err_len) {
    std::lock_guard<std::mutex> lock(emu_mutex());
    auto it = kernels().find(name);
    if (it == kernels().end()) {
        write_error(err, err_len, std::string("no kernel named ") + name);
        return 1;
    }
    if (it->second.signature != signature) {
        write_error(err, err_len, std::string(name) + ": arguments typed '" + signature + "', the kernel takes '" +
                                      it->second.signature + "'");
        return 1;
    }
    std::string error = emu::launch(dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]),
                                    shared_bytes, it->second.bind(params));
    for (auto& [addr, a] : allocations()) {
        unsigned char* lo = a.base;
        unsigned char* hi = a.base + kGuard + a.bytes;
        const size_t below = first_damage(lo), above = first_damage(hi);
        if (below == kGuard && above == kGuard) continue;
        if (error.empty())
            error = below != kGuard ? "write out of bounds: " + std::to_string(kGuard - below) +
                                          " bytes before a buffer of " + std::to_string(a.bytes) + " bytes"
                                    : "write out of bounds: byte " + std::to_string(above) +
                                          " past the end of a buffer of " + std::to_string(a.bytes) + " bytes";
        // Restore the guards so later launches are judged on their own.
        fill_guard(lo);
        fill_guard(hi);
    }
    if (!error.empty()) {
        write_error(err, err_len, std::string(name) + ": " + error);
        return 1;
    }
    return 0;
}
}
