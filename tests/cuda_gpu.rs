//! On a machine with an NVIDIA GPU: every kernel family on the GPU against the
//! CPU kernels (the checks of tests/cuda_support/vs_cpu.rs), one test each,
//! printing `op <check>: PASS ..., max abs error E (F% of tolerance)`; the
//! caching allocator serving repeated work without new driver allocations; 50
//! training steps on `Device::Cuda(0)` against the CPU. Without a GPU:
//! `CudaBackend::new` must return a clear error, never panic, and the checks
//! say SKIPPED; in the dry run of scripts/gpu-check.sh
//! (`CONVFORMER_GPU_CHECK_DRY=1`) they run on the emulator instead, 5
//! training steps, so the script's parsing of these lines is exercised.

mod cuda_support;
mod support;

use convformer::cuda::driver::{self, cuda_device, probe_driver};
use convformer::cuda::{Backend, CudaBackend, EmuBackend};
use convformer::Device;
use cuda_support::vs_cpu;

fn dry_run() -> bool {
    std::env::var_os("CONVFORMER_GPU_CHECK_DRY").is_some_and(|v| v == "1")
}

/// Runs one check on the GPU, else (dry run) on the emulator, else skips loudly.
fn check(name: &str, gpu: fn(&CudaBackend), emu: fn(&EmuBackend)) {
    let on = match driver::global() {
        Ok(be) => {
            gpu(be);
            be.name().unwrap_or_else(|_| "cuda:0".into())
        }
        Err(_) if dry_run() => {
            emu(&EmuBackend);
            "the CUDA emulator (dry run)".into()
        }
        Err(e) => {
            return loud(&format!(
                "op {name}: SKIPPED: GPU kernel checks (no GPU here: {e})\n"
            ))
        }
    };
    let (abs, of_tol) = vs_cpu::take_max_error();
    loud(&format!(
        "op {name}: PASS on {on}, max abs error {abs:.2e} ({:.1}% of tolerance)\n",
        100.0 * of_tol
    ));
}

macro_rules! op_checks {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            check(stringify!($name), vs_cpu::$name::<CudaBackend>, vs_cpu::$name::<EmuBackend>);
        }
    )*};
}

vs_cpu::every_check!(op_checks);

/// Without a driver every way to ask for the GPU is a clear error.
#[test]
fn driver_absence_is_a_clear_error() {
    let Err(e) = CudaBackend::new(0) else {
        return loud("driver absence: SKIPPED (this machine has a GPU)\n");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("libcuda") || msg.contains("CUDA device"),
        "the error says what is missing: {msg}"
    );
    assert!(cuda_device(0).is_err());
    assert!(Device::cuda(0).is_err());
    assert_eq!(Device::auto(), Device::Cpu);
    assert!(driver::global().is_err());
}

/// The caching allocator: the second round of identical work reuses buffers
/// (a backend of its own, so the other tests' allocations do not count).
#[test]
fn allocator_reuses_buffers_on_the_gpu() {
    let be = match CudaBackend::new(0) {
        Ok(be) => be,
        Err(e) => {
            assert!(probe_driver().is_err() || e.to_string().contains("CUDA device"));
            return loud(&format!("allocator: SKIPPED (no GPU here: {e})\n"));
        }
    };
    vs_cpu::attention_matches_cpu(&be);
    let before = be.driver_allocations();
    vs_cpu::attention_matches_cpu(&be);
    assert_eq!(
        be.driver_allocations(),
        before,
        "a repeated step allocated from the driver"
    );
    let x = be.upload_f32(&[1.0, -2.5, 3.0]).unwrap();
    assert_eq!(be.download_f32(&x, 3).unwrap(), vec![1.0, -2.5, 3.0]);
    loud(&format!(
        "allocator: PASS, {before} driver allocations, none on the repeat\n"
    ));
}

/// 50 training steps of a small ConvFormerNet on the GPU and on the CPU from
/// one seed: losses within 1e-4 relative at every step (dropout masks are the
/// same Philox stream on both).
#[test]
fn fifty_training_steps_match_cpu_on_the_gpu() {
    match Device::cuda(0) {
        Ok(device) => cuda_support::training::assert_same_run(device, 50, 64),
        Err(_) if dry_run() => cuda_support::training::assert_same_run(Device::CudaEmu, 5, 8),
        Err(e) => loud(&format!(
            "SKIPPED: GPU training comparison (no GPU here: {e})\n"
        )),
    }
}

/// Written to the process's stderr directly: the test harness captures
/// `eprintln!` of passing tests, and a skip must be seen.
fn loud(msg: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(msg.as_bytes());
}
