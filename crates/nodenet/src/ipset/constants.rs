//! Wire constants, named and numbered as in the kernel's uapi headers
//! `include/uapi/linux/netfilter/ipset/ip_set.h`, `ip_set_hash.h`, `ip_set_bitmap.h`
//! (protocol 7, Linux 5.11+; protocol 6 differs only by the missing INDEX/GET_BY* items).
//! The table is kept complete so replies can be explained by name, hence `dead_code` is allowed.
#![allow(dead_code)]

use netlink_transport::Errno;

/// nfnetlink subsystem id of ipset (`NFNL_SUBSYS_IPSET`).
pub const NFNL_SUBSYS_IPSET: u16 = 6;
/// `NFNETLINK_V0`, the only nfgenmsg version.
pub const NFNETLINK_V0: u8 = 0;

pub const IPSET_PROTOCOL: u8 = 7;
pub const IPSET_PROTOCOL_MIN: u8 = 6;
/// Max length of set and type names including the NUL.
pub const IPSET_MAXNAMELEN: usize = 32;
pub const IPSET_MAX_COMMENT_SIZE: usize = 255;

// enum ipset_cmd
pub const IPSET_CMD_PROTOCOL: u8 = 1;
pub const IPSET_CMD_CREATE: u8 = 2;
pub const IPSET_CMD_DESTROY: u8 = 3;
pub const IPSET_CMD_FLUSH: u8 = 4;
pub const IPSET_CMD_RENAME: u8 = 5;
pub const IPSET_CMD_SWAP: u8 = 6;
pub const IPSET_CMD_LIST: u8 = 7;
pub const IPSET_CMD_SAVE: u8 = 8;
pub const IPSET_CMD_ADD: u8 = 9;
pub const IPSET_CMD_DEL: u8 = 10;
pub const IPSET_CMD_TEST: u8 = 11;
pub const IPSET_CMD_HEADER: u8 = 12;
pub const IPSET_CMD_TYPE: u8 = 13;
pub const IPSET_CMD_GET_BYNAME: u8 = 14;
pub const IPSET_CMD_GET_BYINDEX: u8 = 15;

// Attributes at command level
pub const IPSET_ATTR_PROTOCOL: u16 = 1;
pub const IPSET_ATTR_SETNAME: u16 = 2;
pub const IPSET_ATTR_TYPENAME: u16 = 3;
pub const IPSET_ATTR_SETNAME2: u16 = IPSET_ATTR_TYPENAME;
pub const IPSET_ATTR_REVISION: u16 = 4;
pub const IPSET_ATTR_FAMILY: u16 = 5;
pub const IPSET_ATTR_FLAGS: u16 = 6;
pub const IPSET_ATTR_DATA: u16 = 7;
pub const IPSET_ATTR_ADT: u16 = 8;
pub const IPSET_ATTR_LINENO: u16 = 9;
pub const IPSET_ATTR_PROTOCOL_MIN: u16 = 10;
pub const IPSET_ATTR_REVISION_MIN: u16 = IPSET_ATTR_PROTOCOL_MIN;
pub const IPSET_ATTR_INDEX: u16 = 11;

// CADT specific attributes
pub const IPSET_ATTR_IP: u16 = 1;
pub const IPSET_ATTR_IP_TO: u16 = 2;
pub const IPSET_ATTR_CIDR: u16 = 3;
pub const IPSET_ATTR_PORT: u16 = 4;
pub const IPSET_ATTR_PORT_TO: u16 = 5;
pub const IPSET_ATTR_TIMEOUT: u16 = 6;
pub const IPSET_ATTR_PROTO: u16 = 7;
pub const IPSET_ATTR_CADT_FLAGS: u16 = 8;
pub const IPSET_ATTR_CADT_LINENO: u16 = IPSET_ATTR_LINENO;
pub const IPSET_ATTR_MARK: u16 = 10;
pub const IPSET_ATTR_MARKMASK: u16 = 11;
pub const IPSET_ATTR_BITMASK: u16 = 12;
// Create-only specific attributes (IPSET_ATTR_CADT_MAX = 16)
pub const IPSET_ATTR_INITVAL: u16 = 17;
pub const IPSET_ATTR_HASHSIZE: u16 = 18;
pub const IPSET_ATTR_MAXELEM: u16 = 19;
pub const IPSET_ATTR_NETMASK: u16 = 20;
pub const IPSET_ATTR_BUCKETSIZE: u16 = 21;
pub const IPSET_ATTR_RESIZE: u16 = 22;
pub const IPSET_ATTR_SIZE: u16 = 23;
// Kernel-only
pub const IPSET_ATTR_ELEMENTS: u16 = 24;
pub const IPSET_ATTR_REFERENCES: u16 = 25;
pub const IPSET_ATTR_MEMSIZE: u16 = 26;

// ADT specific attributes
pub const IPSET_ATTR_ETHER: u16 = 17;
pub const IPSET_ATTR_NAME: u16 = 18;
pub const IPSET_ATTR_NAMEREF: u16 = 19;
pub const IPSET_ATTR_IP2: u16 = 20;
pub const IPSET_ATTR_CIDR2: u16 = 21;
pub const IPSET_ATTR_IP2_TO: u16 = 22;
pub const IPSET_ATTR_IFACE: u16 = 23;
pub const IPSET_ATTR_BYTES: u16 = 24;
pub const IPSET_ATTR_PACKETS: u16 = 25;
pub const IPSET_ATTR_COMMENT: u16 = 26;
pub const IPSET_ATTR_SKBMARK: u16 = 27;
pub const IPSET_ATTR_SKBPRIO: u16 = 28;
pub const IPSET_ATTR_SKBQUEUE: u16 = 29;
pub const IPSET_ATTR_PAD: u16 = 30;

// IP specific attributes
pub const IPSET_ATTR_IPADDR_IPV4: u16 = 1;
pub const IPSET_ATTR_IPADDR_IPV6: u16 = 2;

// enum ipset_errno
pub const IPSET_ERR_PRIVATE: Errno = Errno::new(4096);
pub const IPSET_ERR_PROTOCOL: Errno = Errno::new(4097);
pub const IPSET_ERR_FIND_TYPE: Errno = Errno::new(4098);
pub const IPSET_ERR_MAX_SETS: Errno = Errno::new(4099);
pub const IPSET_ERR_BUSY: Errno = Errno::new(4100);
pub const IPSET_ERR_EXIST_SETNAME2: Errno = Errno::new(4101);
pub const IPSET_ERR_TYPE_MISMATCH: Errno = Errno::new(4102);
pub const IPSET_ERR_EXIST: Errno = Errno::new(4103);
pub const IPSET_ERR_INVALID_CIDR: Errno = Errno::new(4104);
pub const IPSET_ERR_INVALID_NETMASK: Errno = Errno::new(4105);
pub const IPSET_ERR_INVALID_FAMILY: Errno = Errno::new(4106);
pub const IPSET_ERR_TIMEOUT: Errno = Errno::new(4107);
pub const IPSET_ERR_REFERENCED: Errno = Errno::new(4108);
pub const IPSET_ERR_IPADDR_IPV4: Errno = Errno::new(4109);
pub const IPSET_ERR_IPADDR_IPV6: Errno = Errno::new(4110);
pub const IPSET_ERR_COUNTER: Errno = Errno::new(4111);
pub const IPSET_ERR_COMMENT: Errno = Errno::new(4112);
pub const IPSET_ERR_INVALID_MARKMASK: Errno = Errno::new(4113);
pub const IPSET_ERR_SKBINFO: Errno = Errno::new(4114);
pub const IPSET_ERR_BITMASK_NETMASK_EXCL: Errno = Errno::new(4115);
pub const IPSET_ERR_TYPE_SPECIFIC: Errno = Errno::new(4352);
// ip_set_hash.h
pub const IPSET_ERR_HASH_FULL: Errno = Errno::new(4352);
pub const IPSET_ERR_HASH_ELEM: Errno = Errno::new(4353);
pub const IPSET_ERR_INVALID_PROTO: Errno = Errno::new(4354);
pub const IPSET_ERR_MISSING_PROTO: Errno = Errno::new(4355);
pub const IPSET_ERR_HASH_RANGE_UNSUPPORTED: Errno = Errno::new(4356);
pub const IPSET_ERR_HASH_RANGE: Errno = Errno::new(4357);
// ip_set_bitmap.h
pub const IPSET_ERR_BITMAP_RANGE: Errno = Errno::new(4352);
pub const IPSET_ERR_BITMAP_RANGE_SIZE: Errno = Errno::new(4353);

// enum ipset_cmd_flags (IPSET_ATTR_FLAGS, command level)
pub const IPSET_FLAG_EXIST: u32 = 1 << 0;
pub const IPSET_FLAG_LIST_SETNAME: u32 = 1 << 1;
pub const IPSET_FLAG_LIST_HEADER: u32 = 1 << 2;

// enum ipset_cadt_flags (IPSET_ATTR_CADT_FLAGS)
pub const IPSET_FLAG_NOMATCH: u32 = 1 << 2;
pub const IPSET_FLAG_WITH_COUNTERS: u32 = 1 << 3;
pub const IPSET_FLAG_WITH_COMMENT: u32 = 1 << 4;
pub const IPSET_FLAG_WITH_FORCEADD: u32 = 1 << 5;
pub const IPSET_FLAG_WITH_SKBINFO: u32 = 1 << 6;

// Netfilter protocol families (linux/netfilter.h)
pub const NFPROTO_UNSPEC: u8 = 0;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;

// Netlink (linux/netlink.h): the transport's, defined once.
pub use netlink_transport::wire::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_MULTIPART as NLM_F_MULTI, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN,
};
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
