//! Shared test support: a real control plane (`kube_env`). Each integration test binary compiles
//! this module and uses a part of it.
#![allow(dead_code)]

pub mod chart;
pub mod kube_env;
pub mod operator;
