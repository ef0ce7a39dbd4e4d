//! Neural-network modules on the autograd tape. Each module registers its
//! parameters in a `ParamStore` under PyTorch-compatible names and shapes, so a
//! saved model loads into the equivalent `torch.nn` network.

pub mod attention;
pub mod conv;
pub mod convformer;
pub mod encoder;
pub mod infer;
pub mod init;
pub mod linear;
pub mod norm;

pub use attention::MultiHeadAttention;
pub use conv::Conv1d;
pub use convformer::{ConvFormerNet, ModelConfig};
pub use encoder::{Activation, EncoderOptions, TransformerEncoderBlock};
pub use infer::Inference;
pub use init::{glorot_uniform, SeedRng};
pub use linear::Linear;
pub use norm::LayerNorm;
