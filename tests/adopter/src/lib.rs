//! The orders service's handler: each message is an order line `<sku>:<quantity>`.

use sqsbalancer::{HandlerError, Message};

/// One order line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// The item.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// Why a message is not an order line.
#[derive(Debug)]
pub struct NotALine(pub String);

impl std::fmt::Display for NotALine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an order line: {:?}", self.0)
    }
}

impl std::error::Error for NotALine {}

/// Reads an order line.
pub fn parse(body: &str) -> Result<Line, NotALine> {
    let (sku, quantity) = body
        .split_once(':')
        .ok_or_else(|| NotALine(body.to_owned()))?;
    let quantity = quantity.parse().map_err(|_| NotALine(body.to_owned()))?;
    Ok(Line {
        sku: sku.to_owned(),
        quantity,
    })
}

/// Handles one order message: `?` on any error fails it, and SQS delivers it again.
pub async fn handle(m: Message) -> Result<(), HandlerError> {
    let line = parse(&m.body)?;
    println!("handled {} x{}", line.sku, line.quantity);
    Ok(())
}
