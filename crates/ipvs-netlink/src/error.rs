//! Errors of the codec: a reply that cannot be turned into a value.

/// Why bytes from the kernel could not be decoded. Never a panic: every decoder returns this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The netlink/attribute framing itself is broken (truncated, bad length, wrong width).
    #[error("malformed netlink data: {0}")]
    Wire(#[from] netlink_packet_core::DecodeError),
    /// A required attribute is absent.
    #[error("{object} lacks {attribute}")]
    Missing {
        /// The object being decoded (`service`, `destination`, ...).
        object: &'static str,
        /// The kernel's attribute name.
        attribute: &'static str,
    },
    /// An attribute is present but its value is not acceptable.
    #[error("{object} has an invalid {attribute}: {reason}")]
    Invalid {
        /// The object being decoded.
        object: &'static str,
        /// The kernel's attribute name.
        attribute: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The kernel answered with a message this request does not expect.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}
