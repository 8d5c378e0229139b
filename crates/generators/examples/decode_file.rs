//! Decodes an MP4 file with the crate's demuxer + OpenH264 and prints what came out:
//! `cargo run -p talkstream-generators --example decode_file -- FILE.mp4`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: decode_file FILE.mp4");
        std::process::exit(2);
    };
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    match talkstream_generators::mp4::parse_video_track(&data) {
        Ok(t) => println!(
            "track {}: {} {}x{} timescale {} samples {}",
            t.track_id,
            t.codec_str(),
            t.width,
            t.height,
            t.timescale,
            t.samples.len()
        ),
        Err(e) => println!("demux error: {e}"),
    }
    match talkstream_generators::decode::decode_mp4(&data) {
        Ok(raw) => println!(
            "decoded {} frames, first {}x{}, times (us) {:?}",
            raw.frames.len(),
            raw.frames[0].width,
            raw.frames[0].height,
            &raw.times_us[..raw.times_us.len().min(6)]
        ),
        Err(e) => println!("decode error: {e}"),
    }
}
