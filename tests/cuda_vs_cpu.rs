//! The emulated CUDA kernels against the engine's CPU kernels; the checks
//! themselves live in tests/cuda_support/vs_cpu.rs (shared with the GPU run).

mod cuda_support;
mod support;

use convformer::cuda::EmuBackend;
use cuda_support::vs_cpu;

#[test]
fn matmul_matches_cpu() {
    vs_cpu::matmul_matches_cpu(&EmuBackend);
}

#[test]
fn linear_forward_and_backward_match_cpu() {
    vs_cpu::linear_forward_and_backward_match_cpu(&EmuBackend);
}

#[test]
fn conv1d_matches_cpu() {
    vs_cpu::conv1d_matches_cpu(&EmuBackend);
}

#[test]
fn layer_norm_matches_cpu() {
    vs_cpu::layer_norm_matches_cpu(&EmuBackend);
}

#[test]
fn attention_matches_cpu() {
    vs_cpu::attention_matches_cpu(&EmuBackend);
}

#[test]
fn softmax_activations_bias_pool_match_cpu() {
    vs_cpu::softmax_activations_bias_pool_match_cpu(&EmuBackend);
}

#[test]
fn dropout_masks_are_bit_identical_to_cpu() {
    vs_cpu::dropout_masks_are_bit_identical_to_cpu(&EmuBackend);
}

#[test]
fn losses_match_cpu() {
    vs_cpu::losses_match_cpu(&EmuBackend);
}

#[test]
fn adamw_matches_cpu_optimizer() {
    vs_cpu::adamw_matches_cpu_optimizer(&EmuBackend);
}
