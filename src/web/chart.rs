//! The usage chart of the key page: calls per hour over the last week, as
//! inline SVG drawn on the server (no script, no style attribute: the
//! strict CSP holds), with a text summary for screen readers.

use chrono::NaiveDateTime;

/// One bar: where it is drawn, and what it says on hover.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub label: String,
}

pub struct Chart {
    pub bars: Vec<Bar>,
    pub width: u32,
    pub height: u32,
    pub bar_width: u32,
    pub total: u64,
    pub peak: u64,
    /// "Busiest hour: …", or empty without calls.
    pub busiest: String,
    /// Day boundaries: (x, label).
    pub days: Vec<(u32, String)>,
}

const BAR: u32 = 4;
const HEIGHT: u32 = 120;

impl Chart {
    pub fn hourly(hours: &[(NaiveDateTime, u64)]) -> Self {
        let peak = hours.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let total = hours.iter().map(|(_, n)| *n).sum();
        let mut bars = Vec::new();
        let mut days = Vec::new();
        for (i, (hour, n)) in hours.iter().enumerate() {
            let x = i as u32 * BAR;
            if hour.and_utc().timestamp().rem_euclid(86_400) == 0 {
                days.push((x, hour.format("%a %d").to_string()));
            }
            if *n == 0 || peak == 0 {
                continue;
            }
            // At least 2 px, so a single call shows.
            let height = ((*n as f64 / peak as f64) * f64::from(HEIGHT - 4)).round().max(2.0) as u32;
            bars.push(Bar {
                x,
                y: HEIGHT - height,
                height,
                label: format!(
                    "{} UTC: {n} call{}",
                    hour.format("%a %d %b %H:00"),
                    if *n == 1 { "" } else { "s" }
                ),
            });
        }
        let busiest = hours
            .iter()
            .rfind(|(_, n)| *n > 0 && *n == peak)
            .map(|(h, n)| format!("Busiest hour: {} UTC, {n} calls.", h.format("%a %d %b %H:00")))
            .unwrap_or_default();
        Self {
            bars,
            width: hours.len() as u32 * BAR,
            height: HEIGHT,
            bar_width: BAR - 1,
            total,
            peak,
            busiest,
            days,
        }
    }
}
