fn main() {
    let data = std::path::Path::new("../shared/data");
    for (file, app) in graphscale_sim::calibrate::all(data).unwrap() {
        std::fs::write(
            format!("data/topologies/{file}"),
            serde_json::to_string_pretty(&app).unwrap() + "\n",
        )
        .unwrap();
        println!(
            "{file}: {} services, peak {} slo {}",
            app.services.len(),
            app.nominal_peak_rps,
            app.slo_ms
        );
    }
}
