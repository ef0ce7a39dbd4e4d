//! The emulator's race and barrier checker (kernels/emu/race.cpp) on one
//! planted bug per class (kernels/emu/planted_bugs.cpp): each buggy kernel must
//! fail with the report of its class, naming the kernel, the block, both
//! threads, the memory and the kinds of access; each fixed twin must run clean.
//! That every shipped kernel runs clean under the checker is proven by
//! tests/cuda_emu.rs, cuda_vs_cpu.rs, cuda_tape.rs and cuda_train.rs, whose
//! launches all go through it.

use convformer::cuda::emu::run_planted;

fn report(name: &str) -> String {
    run_planted(name, true)
        .unwrap_or_else(|e| panic!("the fixed twin of {name} must run clean: {e}"));
    match run_planted(name, false) {
        Ok(()) => panic!("{name}: the planted bug was not reported"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(report: &str, parts: &[&str]) {
    for p in parts {
        assert!(report.contains(p), "missing {p:?} in: {report}");
    }
}

#[test]
fn shared_memory_hazard_between_warps_is_reported() {
    // Thread 0 reads s[32] before thread 32 (the next warp) writes it.
    let r = report("planted_shared_race");
    assert_has(
        &r,
        &[
            "planted_shared_race: thread (32,0,0) of block (0,0,0): shared-memory race: writes static shared memory + ",
            "which thread (0,0,0) read in the same barrier interval (no __syncthreads between them)",
        ],
    );
}

#[test]
fn warp_access_ordered_only_by_lockstep_is_reported() {
    // Lane 0 reads s[1] before lane 1 writes it, with no __syncwarp between.
    let r = report("planted_warp_race");
    assert_has(
        &r,
        &[
            "planted_warp_race: thread (1,0,0) of block (0,0,0): warp-level race: writes static shared memory + ",
            "which thread (0,0,0) of the same warp read with no __syncwarp, shuffle or vote between them",
        ],
    );
}

#[test]
fn device_write_write_between_blocks_is_reported() {
    let r = report("planted_global_race");
    assert_has(
        &r,
        &[
            "planted_global_race: thread (0,0,0) of block (1,0,0): global-memory race: writes byte 0 of a device buffer of 4 bytes",
            "which thread (0,0,0) of block (0,0,0) wrote in the same launch (write-write between blocks without atomics)",
        ],
    );
}

#[test]
fn barrier_reached_by_part_of_the_block_is_an_error() {
    let r = report("planted_divergent_barrier");
    assert_has(
        &r,
        &[
            "planted_divergent_barrier: divergent __syncthreads in block (0,0,0): thread 16 waits at planted_bugs.cpp:",
            "while thread 0 has exited",
        ],
    );
}

#[test]
fn unknown_scenario_is_an_error() {
    let e = run_planted("planted_nothing", false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no planted scenario named planted_nothing"),
        "{e}"
    );
}
