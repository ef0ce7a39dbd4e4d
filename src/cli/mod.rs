pub mod tune;
