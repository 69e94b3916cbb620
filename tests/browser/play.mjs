// Plays one OnAir stream (HTTP-FLV or WS-FLV) with mpegts.js in headless Chromium and prints
// one JSON line with the result; exits 1 when playback did not start or did not advance.
//
//   node play.mjs --page http://127.0.0.1:PAGE/index.html --url http://127.0.0.1:HTTP/live/ch.flv
//
// Options: --chromium PATH (default /usr/bin/chromium), --timeout MS (default 15000) for the
// first --play S (default 1) seconds of playback, --advance MS (default 2000) for the
// "currentTime keeps moving" check.
// Driven by tests/tests/browser.rs, which serves the page from a port other than OnAir's.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function args() {
  const out = { chromium: '/usr/bin/chromium', timeout: 15000, advance: 2000, play: 1 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out) && key !== 'page' && key !== 'url') throw new Error(`unknown option ${argv[i]}`);
    out[key] = argv[i + 1];
  }
  if (!out.page || !out.url) throw new Error('usage: play.mjs --page URL --url STREAM_URL');
  out.timeout = Number(out.timeout);
  out.advance = Number(out.advance);
  out.play = Number(out.play);
  return out;
}

const opts = args();
const result = { url: opts.url, page: opts.page, ok: false, errors: [], console: [] };
const userDataDir = mkdtempSync(join(tmpdir(), 'onair-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.chromium,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') result.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => result.errors.push(`pageerror: ${e.message}`));
  await page.goto(`${opts.page}?url=${encodeURIComponent(opts.url)}`, { timeout: opts.timeout });
  result.page_origin = await page.evaluate(() => location.origin);
  result.user_agent = await page.evaluate(() => navigator.userAgent);
  try {
    await page.waitForFunction(
      (s) => {
        const v = document.getElementById('video');
        return v.currentTime > s && v.videoWidth > 0;
      },
      opts.play,
      { timeout: opts.timeout, polling: 50 },
    );
  } catch (e) {
    result.errors.push(`no playback within ${opts.timeout} ms: ${e.message.split('\n')[0]}`);
  }
  const snap = () =>
    page.evaluate(() => {
      const v = document.getElementById('video');
      return {
        currentTime: v.currentTime,
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
        paused: v.paused,
        readyState: v.readyState,
        decodedFrames: v.getVideoPlaybackQuality?.().totalVideoFrames ?? null,
        state: window.onair,
      };
    });
  const first = await snap();
  await new Promise((r) => setTimeout(r, opts.advance));
  const second = await snap();
  const s = second.state;
  result.mse_live_playback = s.supported;
  result.video_width = second.videoWidth;
  result.video_height = second.videoHeight;
  result.current_time_before = first.currentTime;
  result.current_time_after = second.currentTime;
  result.advanced_s = second.currentTime - first.currentTime;
  result.decoded_frames = second.decodedFrames;
  result.first_frame_ms = s.firstFrameMs === null ? null : Math.round(s.firstFrameMs);
  result.first_frame_after_load_ms =
    s.firstFrameMs === null || s.loadStartedMs === null ? null : Math.round(s.firstFrameMs - s.loadStartedMs);
  result.errors.push(...s.errors);
  result.ok =
    first.currentTime > opts.play &&
    first.videoWidth > 0 &&
    result.first_frame_ms !== null &&
    // Over `advance` ms of wall time a live stream should play at least half as much media.
    result.advanced_s > opts.advance / 2000;
} catch (e) {
  result.errors.push(`driver: ${e.message}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
