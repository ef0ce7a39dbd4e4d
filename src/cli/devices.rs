//! `convformer devices`: the CPU threads and CUDA devices the engine can use.

use cudarc::driver::{sys, CudaContext};

/// One line per device, or the reason there is none.
pub fn describe() -> Vec<String> {
    let mut lines = vec![format!(
        "cpu: {} rayon threads (set RAYON_NUM_THREADS to change)",
        rayon::current_num_threads()
    )];
    lines.extend(cuda_lines());
    lines
}

fn cuda_lines() -> Vec<String> {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if !unsafe { sys::is_culib_present() } {
        return vec!["cuda: none (the NVIDIA driver library libcuda was not found)".into()];
    }
    let count = match CudaContext::device_count() {
        Ok(n) => n,
        Err(e) => return vec![format!("cuda: none (the driver did not initialise: {e})")],
    };
    if count == 0 {
        return vec!["cuda: none (the driver reports no devices)".into()];
    }
    (0..count as usize)
        .map(|i| match CudaContext::new(i) {
            Ok(ctx) => {
                let name = ctx
                    .name()
                    .unwrap_or_else(|e| format!("<name unavailable: {e}>"));
                let mem = ctx
                    .total_mem()
                    .map(|b| b as f64 / (1u64 << 30) as f64)
                    .unwrap_or(f64::NAN);
                format!("cuda:{i}: {name}, {mem:.1} GiB")
            }
            Err(e) => format!("cuda:{i}: cannot open ({e})"),
        })
        .collect()
}

pub fn run() {
    for line in describe() {
        println!("{line}");
    }
}
