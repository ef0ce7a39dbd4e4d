//! The element types the CPU kernels are generic over: f32 for training, f64 for
//! gradient checks. Sealed: the kernels pick their GEMM (`cpu::gemm`) and fast
//! paths by which of the two `T` is.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

pub trait Float:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    const ZERO: Self;
    const ONE: Self;
    const NAME: &'static str;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    fn is_finite(self) -> bool;
}

/// Methods of `Float` that call the primitive's method of the same name.
macro_rules! same_named {
    ($t:ty: $($f:ident($($a:ident: $at:ty),*) -> $r:ty),* $(,)?) => {
        $(
            #[inline]
            fn $f(self $(, $a: $at)*) -> $r {
                <$t>::$f(self $(, $a)*)
            }
        )*
    };
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAME: &'static str = stringify!($t);
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            same_named!($t:
                exp() -> Self,
                ln() -> Self,
                sqrt() -> Self,
                tanh() -> Self,
                abs() -> Self,
                max(o: Self) -> Self,
                min(o: Self) -> Self,
                is_finite() -> bool,
            );
        }
    };
}
impl_float!(f32);
impl_float!(f64);
