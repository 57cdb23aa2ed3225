//! Membership's messages on the wire and its endpoints: SWIM packets ([`SwimPacket`], one way)
//! and clock probes ([`TimeProbe`], answered with the peer's two timestamps).
//! [`MembershipHandle::register`] adds both to the node's router.

use std::sync::Arc;

use bytes::Bytes;
use concord_rpc::{Endpoint, MessageKind, OneWay, OneWayEndpoint, Payload, Router, Rpc, RpcError};
use concord_types::NodeId;
use serde::{Deserialize, Serialize};

use crate::{MembershipHandle, WallClock, answer_time_probe};

/// `Swim`: a SWIM packet as foca encodes it (its own header and body). Its bytes are the
/// payload as they are; the [`crate::Swim`] machine decodes and checks them when the driver
/// takes the packet, so no packet is decoded on the connection's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimPacket(pub Bytes);

impl Payload for SwimPacket {
    fn to_payload(&self) -> Bytes {
        self.0.clone()
    }

    fn from_payload(payload: Bytes) -> Result<Self, RpcError> {
        Ok(SwimPacket(payload))
    }
}

impl OneWay for SwimPacket {
    const KIND: MessageKind = MessageKind::Swim;
}

/// `TimeProbe`: asks a peer for its clock. An empty payload; the reply is the peer's `(t1, t2)`
/// in wall-clock milliseconds ([`answer_time_probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeProbe;

impl Rpc for TimeProbe {
    const KIND: MessageKind = MessageKind::TimeProbe;
    type Reply = (u64, u64);
}

impl MembershipHandle {
    /// Registers membership's endpoints with the node's router: SWIM packets go to this
    /// driver's bounded inbox, time probes are answered from its clock.
    pub fn register(&self, router: &mut Router) {
        router.one_way::<SwimPacket, _>(Arc::new(self.clone()));
        router.endpoint::<TimeProbe, _>(Arc::new(Clock(self.clock().clone())));
    }
}

impl OneWayEndpoint<SwimPacket> for MembershipHandle {
    fn take(&self, from: NodeId, message: SwimPacket) {
        self.handle_incoming(from, message.0);
    }
}

/// Answers time probes.
struct Clock(WallClock);

impl Endpoint<TimeProbe> for Clock {
    async fn handle(&self, _from: &NodeId, _probe: TimeProbe) -> Result<(u64, u64), String> {
        Ok(answer_time_probe(&*self.0))
    }
}

#[cfg(test)]
mod tests {
    use concord_rpc::Handler;

    use super::*;

    /// A SWIM packet travels as its own bytes, and a time probe as an empty payload answered
    /// with two timestamps: the encodings nodes of earlier builds send and expect.
    #[test]
    fn the_wire_encodings_are_the_raw_packet_and_an_empty_probe() {
        let packet = SwimPacket(Bytes::from_static(b"\x01foca bytes"));
        assert_eq!(packet.to_payload(), packet.0);
        assert_eq!(SwimPacket::from_payload(packet.0.clone()), Ok(packet));
        assert!(TimeProbe.to_payload().is_empty());
        assert_eq!(<(u64, u64)>::from_payload(concord_rpc::encode(&(5u64, 7u64))), Ok((5, 7)));
    }

    /// Registered, a time probe is answered from the driver's clock.
    #[tokio::test]
    async fn a_registered_time_probe_is_answered_from_the_clock() {
        let clock: WallClock = Arc::new(|| 1_234);
        let mut router = Router::new();
        router.endpoint::<TimeProbe, _>(Arc::new(Clock(clock)));
        let from = NodeId::new("n2").unwrap();
        let reply = router.handle(from, MessageKind::TimeProbe, Bytes::new()).await.unwrap();
        assert_eq!(concord_rpc::decode::<(u64, u64)>(&reply), Ok((1_234, 1_234)));
    }
}
