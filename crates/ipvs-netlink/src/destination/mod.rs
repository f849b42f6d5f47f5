//! Real servers: `ipvsadm -a` (NEW_DEST), `-e` (SET_DEST), `-d` (DEL_DEST), `-L` (GET_DEST dump).

mod attribute;
mod forward;
mod model;

pub use attribute::DestinationAttribute;
pub use forward::{ForwardMethod, TunnelFlags, TunnelType};
pub use model::Destination;
