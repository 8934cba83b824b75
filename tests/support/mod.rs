// Each test binary uses a different part of the support code.
#![allow(dead_code, unused_imports)]

pub use ::fake_apiserver;
pub use ::fake_apiserver::flux;
pub use ::fake_azure;
pub mod fixes;
pub mod run;
pub mod socks;
