//! Gathering: all I/O that feeds the snapshot. Live reads from the API server, manifests from
//! files or `kubectl kustomize`, and the local side from the kubeconfig and PATH.

pub mod aso;
pub mod flux_instance;
pub mod layout;
pub mod live;
pub mod local;
pub mod manifests;
pub mod sourceignore;
pub mod trace;
