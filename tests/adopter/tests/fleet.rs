//! The handler through crashes and hand-offs of a simulated fleet of three.

use sqsbalancer::testing::FleetTest;
use sqsbalancer::{HandlerError, Message};

#[test]
fn three_instances_of_the_handler_lose_no_order_through_crashes_and_hand_offs() {
    // The kit's messages are not order lines: answer them as the service would answer its own.
    let handler = |m: Message| async move {
        let n = m.body.trim_start_matches("message ");
        let line = format!("sku-{n}:1");
        sqsbalancer_adopter::parse(&line)?;
        Ok::<(), HandlerError>(())
    };
    let report = FleetTest::new(handler)
        .instances(3)
        .messages(300)
        .crashes(2)
        .stops(1)
        .seed(11)
        .run();
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(report.left, 0, "{report}");
    assert_eq!(report.succeeded, 300, "{report}");
}
