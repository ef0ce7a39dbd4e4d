//! The kernel modules, one per `kernels/*.cu` file, as build.rs found them:
//! their sources, embedded for NVRTC, their kernels, and the PTX nvcc produced
//! at build time when it was available.

/// One kernel file (generated entries of `MODULE_FILES`).
struct ModuleFile {
    stem: &'static str,
    source: &'static str,
    kernels: &'static [&'static str],
    prebuilt_ptx: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/kernel_modules.rs"));

const COMMON: &str = include_str!("../../kernels/common.cuh");

/// A kernel module: an index into the files build.rs found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Module(usize);

impl Module {
    pub const ALL: [Module; MODULE_FILES.len()] = {
        let mut all = [Module(0); MODULE_FILES.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = Module(i);
            i += 1;
        }
        all
    };

    fn file(self) -> &'static ModuleFile {
        &MODULE_FILES[self.0]
    }

    /// File stem under `kernels/`.
    pub fn stem(self) -> &'static str {
        self.file().stem
    }

    /// The module as one self-contained translation unit (common.cuh and the
    /// shared constants inlined), ready for NVRTC, which has no file system to
    /// include from.
    pub fn source(self) -> String {
        let common = COMMON.replace("#include \"shared_constants.cuh\"", SHARED_CONSTANTS);
        self.file()
            .source
            .replace("#include \"common.cuh\"", &common)
    }

    /// The `extern "C" __global__` functions the module defines.
    pub fn kernels(self) -> &'static [&'static str] {
        self.file().kernels
    }

    /// PTX compiled by nvcc at build time, if nvcc was found.
    pub fn prebuilt_ptx(self) -> Option<&'static str> {
        self.file().prebuilt_ptx
    }

    /// The module defining `kernel`.
    pub fn of_kernel(kernel: &str) -> Option<Module> {
        Module::ALL
            .into_iter()
            .find(|m| m.file().kernels.contains(&kernel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_self_contained_and_use_the_shared_constants() {
        let shared: Vec<&str> = SHARED_CONSTANTS
            .lines()
            .filter_map(|l| l.strip_prefix("#define "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(shared.contains(&"ATT_WARPS") && shared.contains(&"LOSS_HUBER"));
        for m in Module::ALL {
            let src = m.source();
            // The one include left is the emulator's, under CONVFORMER_EMU.
            let includes: Vec<&str> = src.lines().filter(|l| l.contains("#include")).collect();
            assert_eq!(
                includes,
                ["#include \"emu/cuda_emu.h\""],
                "kernels/{}.cu includes a file NVRTC cannot see",
                m.stem()
            );
            for name in &shared {
                let defines = m.file().source.lines().any(|l| {
                    l.trim_start()
                        .strip_prefix("#define ")
                        .and_then(|d| d.split_whitespace().next())
                        == Some(name)
                });
                assert!(!defines, "kernels/{}.cu defines {name} again", m.stem());
            }
        }
    }

    #[test]
    fn every_kernel_has_exactly_one_module() {
        let mut seen = std::collections::HashSet::new();
        for m in Module::ALL {
            assert!(
                !m.kernels().is_empty(),
                "kernels/{}.cu defines no kernel",
                m.stem()
            );
            for &k in m.kernels() {
                assert!(seen.insert(k), "kernel {k} is defined twice");
                assert_eq!(Module::of_kernel(k), Some(m));
            }
        }
        assert!(seen.contains("sgemm_tiled") && seen.contains("permute4"));
        assert_eq!(Module::of_kernel("no_such_kernel"), None);
    }
}
