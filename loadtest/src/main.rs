use std::process::ExitCode;

use clap::Parser;
use loadtest::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    service::logging::init(config.log_format);
    let html = config.report_html.clone();
    let json = config.report_json.clone();
    match loadtest::run(config, service::shutdown::signal()).await {
        Ok(report) => {
            println!("{report}");
            println!("HTML report: {}", html.display());
            if let Some(json) = json {
                println!("JSON report: {}", json.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::FAILURE
        }
    }
}
