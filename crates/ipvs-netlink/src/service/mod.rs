//! Virtual services: `ipvsadm -A` (NEW_SERVICE), `-E` (SET_SERVICE), `-D` (DEL_SERVICE),
//! `-L` (GET_SERVICE).

mod attribute;
mod flags;
mod key;
mod model;
mod scheduler;

pub use attribute::{FlagsMask, ServiceAttribute};
pub use flags::ServiceFlags;
pub use key::VirtualServiceKey;
pub use model::{Service, decode_netmask, encode_netmask};
pub use scheduler::{InvalidSchedulerName, MAX_SCHEDULER_LEN, SchedulerName};
