//! The SVG timeline of a run: one row per queue, coloured by the instance slot that owns it over
//! simulated time, with every fault marked as a vertical line (red for crashes, orange for
//! graceful stops, grey for the rest) and the calm point in green.

use crate::error::SimError;
use crate::report::Report;
use plotters::prelude::*;
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use std::path::Path;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(174, 199, 232),
];

/// Writes the timeline of `report` to `path` as SVG.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), SimError> {
    let svg = render(report).map_err(|reason| SimError::Output {
        path: path.display().to_string(),
        reason,
    })?;
    std::fs::write(path, svg).map_err(|e| SimError::Output {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The timeline of `report` as an SVG document.
pub fn render(report: &Report) -> Result<String, String> {
    let mut rows: BTreeMap<&QueueId, Vec<(u64, Option<usize>)>> = BTreeMap::new();
    for (t, q, owner) in &report.ownership {
        rows.entry(q).or_default().push((*t, *owner));
    }
    let end_s = report.sim_ms as f64 / 1000.0;
    let n = rows.len().max(1);
    let height = (120 + 6 * n).clamp(300, 4_000) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1_200, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let caption = format!(
            "seed {}: queue ownership by instance over simulated time (s)",
            report.seed
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..end_s.max(1.0), 0f64..n as f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_desc("queue")
            .draw()
            .map_err(|e| e.to_string())?;
        let mut bars = Vec::new();
        for (row, changes) in rows.values().enumerate() {
            for (k, (t, owner)) in changes.iter().enumerate() {
                let Some(slot) = owner else { continue };
                let until = changes.get(k + 1).map_or(report.sim_ms, |c| c.0);
                let color = PALETTE[slot % PALETTE.len()];
                bars.push(Rectangle::new(
                    [
                        (*t as f64 / 1000.0, row as f64 + 0.1),
                        (until as f64 / 1000.0, row as f64 + 0.9),
                    ],
                    color.filled(),
                ));
            }
        }
        chart.draw_series(bars).map_err(|e| e.to_string())?;
        let marks = report.fault_marks.iter().map(|(t, kind, _)| {
            let color = match *kind {
                "crash" => RED,
                "stop" => RGBColor(255, 127, 14),
                "calm" => RGBColor(0, 160, 0),
                _ => RGBColor(170, 170, 170),
            };
            let x = *t as f64 / 1000.0;
            PathElement::new(vec![(x, 0.0), (x, n as f64)], color.stroke_width(1))
        });
        chart.draw_series(marks).map_err(|e| e.to_string())?;
        for slot in 0..report.slots {
            let color = PALETTE[slot % PALETTE.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, 0.0), (0.0, 0.0)],
                    color.filled(),
                )))
                .map_err(|e| e.to_string())?
                .label(format!("node-{slot}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
