//! Domain values shared by the model, the desired state, the planner and the kernel adapters.
//!
//! These are what `ipvsadm`, `ip addr`/`ip route` and `ipset` manipulate, as plain values with
//! total orderings so every map built from them iterates (and prints) deterministically.

mod ipset;
mod net;
mod order;
mod owner;
mod scheduler;
mod vs;

pub use ipset::{IpsetEntry, IpsetName, SetKind, SetType};
pub use net::{Family, Proto};
pub(crate) use order::ip_cmp;
pub use owner::{ServiceName, ServicePortName};
pub use scheduler::{Scheduler, VsFlags};
pub use vs::{Forward, RealServer, RsKey, VsKey, VsSpec};
