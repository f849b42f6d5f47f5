//! Resolving the "IPVS" generic netlink family id through the nlctrl family.

use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};

use crate::client::Error;
use crate::client::conn::Conn;
use crate::message::IPVS_GENL_NAME;

const OP: &str = "resolve IPVS family";
const ENOENT: i32 = 2;

/// CTRL_CMD_GETFAMILY "IPVS" -> family id. ENOENT means the ip_vs module is not loaded.
pub(crate) async fn resolve(conn: &mut Conn, seq: u32) -> Result<u16, Error> {
    let mut msg = NetlinkMessage::from(GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_owned())],
    }));
    msg.header.flags = NLM_F_REQUEST;
    msg.header.sequence_number = seq;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    conn.send(&buf)
        .await
        .map_err(|source| Error::Io { op: OP, source })?;
    loop {
        let data = conn
            .recv()
            .await
            .map_err(|source| Error::Io { op: OP, source })?;
        let reply = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(data).map_err(|e| {
            Error::Decode {
                op: OP,
                source: crate::DecodeError::Wire(e),
            }
        })?;
        if reply.header.sequence_number != seq {
            continue;
        }
        return match reply.payload {
            NetlinkPayload::InnerMessage(genl) => genl
                .payload
                .nlas
                .iter()
                .find_map(|a| match a {
                    GenlCtrlAttrs::FamilyId(id) => Some(*id),
                    _ => None,
                })
                .ok_or(Error::Decode {
                    op: OP,
                    source: crate::DecodeError::Missing {
                        object: "nlctrl reply",
                        attribute: "CTRL_ATTR_FAMILY_ID",
                    },
                }),
            NetlinkPayload::Error(e) => match e.code.map(|c| c.get().saturating_neg()) {
                Some(ENOENT) => Err(Error::ModuleNotLoaded),
                Some(errno) => Err(Error::Errno {
                    op: OP,
                    target: IPVS_GENL_NAME.to_owned(),
                    errno: nix::errno::Errno::from_raw(errno),
                }),
                None => continue,
            },
            _ => continue,
        };
    }
}
