//! The kernel modules (one per `kernels/*.cu` file): their sources, embedded for
//! NVRTC, and the PTX nvcc produced at build time when it was available.

include!(concat!(env!("OUT_DIR"), "/prebuilt_ptx.rs"));

const COMMON: &str = include_str!("../../kernels/common.cuh");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    AdamW,
    Attention,
    Conv1d,
    Dropout,
    Elementwise,
    Gemm,
    LayerNorm,
    Loss,
    Pool,
    Softmax,
}

impl Module {
    pub const ALL: [Module; 10] = [
        Module::AdamW,
        Module::Attention,
        Module::Conv1d,
        Module::Dropout,
        Module::Elementwise,
        Module::Gemm,
        Module::LayerNorm,
        Module::Loss,
        Module::Pool,
        Module::Softmax,
    ];

    /// File stem under `kernels/`.
    pub fn stem(self) -> &'static str {
        match self {
            Module::AdamW => "adamw",
            Module::Attention => "attention",
            Module::Conv1d => "conv1d",
            Module::Dropout => "dropout",
            Module::Elementwise => "elementwise",
            Module::Gemm => "gemm",
            Module::LayerNorm => "layernorm",
            Module::Loss => "loss",
            Module::Pool => "pool",
            Module::Softmax => "softmax",
        }
    }

    fn raw_source(self) -> &'static str {
        match self {
            Module::AdamW => include_str!("../../kernels/adamw.cu"),
            Module::Attention => include_str!("../../kernels/attention.cu"),
            Module::Conv1d => include_str!("../../kernels/conv1d.cu"),
            Module::Dropout => include_str!("../../kernels/dropout.cu"),
            Module::Elementwise => include_str!("../../kernels/elementwise.cu"),
            Module::Gemm => include_str!("../../kernels/gemm.cu"),
            Module::LayerNorm => include_str!("../../kernels/layernorm.cu"),
            Module::Loss => include_str!("../../kernels/loss.cu"),
            Module::Pool => include_str!("../../kernels/pool.cu"),
            Module::Softmax => include_str!("../../kernels/softmax.cu"),
        }
    }

    /// The module as one self-contained translation unit (common.cuh inlined),
    /// ready for NVRTC, which has no file system to include from.
    pub fn source(self) -> String {
        self.raw_source().replace("#include \"common.cuh\"", COMMON)
    }

    /// The `extern "C" __global__` functions the module defines: the name before
    /// the first parameter list that is not `__launch_bounds__(...)`.
    pub fn kernels(self) -> Vec<&'static str> {
        let src = self.raw_source();
        src.match_indices("__global__ void")
            .filter_map(|(at, _)| {
                let rest = &src[at..];
                rest.match_indices('(')
                    .filter_map(|(open, _)| rest[..open].split_whitespace().last())
                    .find(|name| *name != "__launch_bounds__")
            })
            .collect()
    }

    /// PTX compiled by nvcc at build time, if nvcc was found.
    pub fn prebuilt_ptx(self) -> Option<&'static str> {
        PREBUILT_PTX
            .iter()
            .find(|(stem, _)| *stem == self.stem())
            .map(|(_, ptx)| *ptx)
    }

    /// The module defining `kernel`.
    pub fn of_kernel(kernel: &str) -> Option<Module> {
        Module::ALL
            .into_iter()
            .find(|m| m.kernels().contains(&kernel))
    }
}
