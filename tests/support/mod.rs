// Each test binary and example uses a different part of the support code.
#![allow(dead_code)]

pub mod fake_apiserver;
pub mod fake_azure;
pub mod flux;
pub mod run;
