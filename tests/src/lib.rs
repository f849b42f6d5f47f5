//! End-to-end scenarios for kube-ipvs; they run inside the kernel lab (`cargo xtask test`).
#![forbid(unsafe_code)]

pub mod lab;
pub mod stock;
