// Drives OnAir's own web app (web/, served by the server itself) in headless Chromium, one
// scenario per run, and prints one JSON line per event; the last line is the result
// ({"done": true, "ok": …}). tests/tests/web.rs starts the server and ffmpeg, reacts to the
// events (e.g. starts publishing once the page shows "offline") and checks the result.
//
//   node web.mjs --base http://127.0.0.1:PORT --scenario watch --slug ch --out DIR \
//     --user viewer:password --user2 fan:password
//
// Scenarios: watch (playback, first frame, chat across two browser contexts, danmaku over the
// video, like, gift and balance), watch-hls (?player=hls plays the live HLS), offline (the
// page turns live by itself), dashboard, admin,
// auth, phone, replay (--replay ID: playback, danmaku across a seek and a pause), and search
// (the home page's search box, category chips, tag buttons and "Load more"; --query, --category,
// --tag, --more each with a matching --…-shows SLUG,SLUG…), and videos (--video ID --title NEW:
// the catalogue's card, its page plays, counts a view, takes a comment and the owner's edit).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function args() {
  const out = { chromium: '/usr/bin/chromium', timeout: 20000 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['base', 'scenario', 'out']) if (!out[k]) throw new Error(`--${k} is required`);
  out.timeout = Number(out.timeout);
  return out;
}

const opts = args();
mkdirSync(opts.out, { recursive: true });
const emit = (o) => console.log(JSON.stringify(o));
const result = { done: true, scenario: opts.scenario, ok: false, errors: [], console: [] };
let browser;

function watchConsole(page, name) {
  page.on('console', (m) => {
    if (m.type() === 'error') result.console.push(`${name}: ${m.text()}`);
  });
  page.on('pageerror', (e) => result.errors.push(`${name} pageerror: ${e.message}`));
}

async function newPage(name, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, colorScheme: 'dark' });
  const page = await context.newPage();
  watchConsole(page, name);
  return page;
}

async function login(page, credentials, next) {
  const [username, password] = credentials.split(':');
  await page.goto(`${opts.base}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => u.pathname === next.split('?')[0], { timeout: opts.timeout });
}

async function shot(page, name) {
  const path = join(opts.out, `${name}.png`);
  await page.screenshot({ path });
  emit({ event: 'screenshot', path });
}

const videoState = (page) =>
  page.evaluate(() => {
    const v = document.querySelector('video');
    const q = v?.getVideoPlaybackQuality?.();
    return {
      currentTime: v?.currentTime ?? 0,
      width: v?.videoWidth ?? 0,
      height: v?.videoHeight ?? 0,
      decodedFrames: q?.totalVideoFrames ?? 0,
      probe: window.__onairWatch ?? null,
    };
  });

async function waitPlaying(page, seconds, frames) {
  await page.waitForFunction(
    ([s, f]) => {
      const v = document.querySelector('video');
      const q = v?.getVideoPlaybackQuality?.();
      return v && v.currentTime > s && (q?.totalVideoFrames ?? 0) > f;
    },
    [seconds, frames],
    { timeout: opts.timeout, polling: 100 },
  );
}

async function watchScenario() {
  const watchPath = `/watch/${opts.slug}`;
  const a = await newPage('viewer');
  await login(a, opts.user, watchPath);
  // The first frame is measured on a fresh load of the watch page, after the login.
  await a.reload();
  const loaded = Date.now();
  await waitPlaying(a, 3, 60);
  const playing = await videoState(a);
  result.playback = playing;
  result.wall_ms_to_3s = Date.now() - loaded;
  result.first_frame_ms = playing.probe?.firstFrameMs == null ? null : Math.round(playing.probe.firstFrameMs);
  result.tech = playing.probe?.tech ?? null;
  emit({ event: 'playing', ...playing });

  const b = await newPage('fan');
  await login(b, opts.user2, watchPath);
  await b.locator('#chat-input').waitFor();
  // The second context's socket signs in after it connects; a send before that is refused.
  const text = `hello from the second browser ${Date.now() % 100000}`;
  await b.waitForFunction(() => !document.querySelector('.chat-head .faint'), null, { timeout: opts.timeout });
  await sendUntilAcked(b, text);
  await a.locator('[data-testid=chat-lines] .kind-chat', { hasText: text }).waitFor({ timeout: opts.timeout });
  result.chat_seen = true;

  await b.getByLabel('Danmaku', { exact: true }).check();
  const dm = `danmaku ${Date.now() % 100000}`;
  await sendUntilAcked(b, dm);
  const item = a.locator('.player .danmaku-item', { hasText: dm });
  await item.waitFor({ timeout: opts.timeout });
  const box = await item.boundingBox();
  const playerBox = await a.locator('.player').boundingBox();
  result.danmaku_over_video = !!box && !!playerBox && box.y >= playerBox.y && box.y < playerBox.y + playerBox.height;
  await shot(a, 'watch-danmaku');

  const likesBefore = Number(await b.getByTestId('likes').textContent());
  await a.getByTestId('like').click();
  await a.getByTestId('like').click();
  await a.getByTestId('like').click();
  // The other context sees the room's total once the server's next like batch goes out.
  await b.waitForFunction((n) => Number(document.querySelector('[data-testid=likes]').textContent) >= n + 3, likesBefore, {
    timeout: opts.timeout,
  });
  result.likes_seen_by_other = Number(await b.getByTestId('likes').textContent());

  await a.getByRole('button', { name: 'Gift' }).click();
  const balance = a.getByTestId('balance');
  await balance.waitFor({ timeout: opts.timeout });
  result.balance_before = parseInt(await balance.textContent(), 10);
  await a.locator('[data-gift=rose]').click();
  await a.waitForFunction(
    (n) => parseInt(document.querySelector('[data-testid=balance]').textContent, 10) < n,
    result.balance_before,
    { timeout: opts.timeout },
  );
  result.balance_after = parseInt(await balance.textContent(), 10);
  await b.locator('[data-testid=chat-lines] .kind-gift', { hasText: 'rose' }).waitFor({ timeout: opts.timeout });
  result.gift_seen_by_other = true;
  result.stats_text = (await a.getByTestId('stream-stats').textContent()).trim();
  result.viewers_text = (await a.getByTestId('viewers').textContent().catch(() => null))?.trim() ?? null;
  await shot(a, 'watch');
  result.ok = true;
}

/// Types `text` into the chat box and sends it until the input empties (acked); a send made
/// before the socket's sign-in completed is refused and stays in the box.
async function sendUntilAcked(page, text) {
  const deadline = Date.now() + opts.timeout;
  const input = page.locator('#chat-input');
  await input.fill(text);
  for (;;) {
    await page.getByRole('button', { name: 'Send' }).click();
    try {
      await page.waitForFunction(() => document.querySelector('#chat-input').value === '', null, { timeout: 2000 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
}

/// The watch page with ?player=hls: the HLS fallback plays the live playlist, and the page
/// never asks for the HTTP-FLV stream.
async function watchHlsScenario() {
  const page = await newPage('viewer');
  const streams = [];
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/live/')) streams.push(path);
  });
  const loaded = Date.now();
  await page.goto(`${opts.base}/watch/${opts.slug}?player=hls`);
  // hls.js starts a few segments behind the live edge, so the playhead starts seconds into the
  // playlist: what counts is how far it moves from there.
  await waitPlaying(page, 0, 0);
  const start = (await videoState(page)).currentTime;
  await waitPlaying(page, start + 3, 60);
  result.wall_ms_to_3s = Date.now() - loaded;
  const playing = await videoState(page);
  result.start_s = start;
  result.advanced_s = playing.currentTime - start;
  result.playback = playing;
  result.tech = playing.probe?.tech ?? null;
  result.first_frame_ms = playing.probe?.firstFrameMs == null ? null : Math.round(playing.probe.firstFrameMs);
  result.stats_text = (await page.getByTestId('stream-stats').textContent()).trim();
  result.playlists = [...new Set(streams.filter((p) => p.endsWith('.m3u8')))];
  result.segments = streams.filter((p) => p.endsWith('.ts')).length;
  result.flv_requests = streams.filter((p) => p.endsWith('.flv'));
  await shot(page, 'watch-hls');
  result.ok = true;
}

async function offlineScenario() {
  const page = await newPage('viewer');
  await page.goto(`${opts.base}/watch/${opts.slug}`);
  await page.locator('.player[data-state=offline]').waitFor({ timeout: opts.timeout });
  await shot(page, 'watch-offline');
  emit({ event: 'offline' });
  const waitingSince = Date.now();
  await page.locator('.player[data-state=live]').waitFor({ timeout: opts.timeout * 2 });
  result.live_after_ms = Date.now() - waitingSince;
  await waitPlaying(page, 1, 10);
  result.playback = await videoState(page);
  result.ok = true;
}

async function dashboardScenario() {
  const page = await newPage('streamer');
  page.on('dialog', (d) => d.accept());
  await login(page, opts.streamer, '/dashboard');
  await page.locator('[data-testid=dashboard-live]', { hasText: 'Live' }).waitFor({ timeout: opts.timeout });
  await page.waitForFunction(() => parseInt(document.querySelector('[data-testid=dash-bitrate]')?.textContent ?? '0', 10) > 0, null, {
    timeout: opts.timeout,
  });
  result.bitrate_text = (await page.getByTestId('dash-bitrate').textContent()).trim();
  await shot(page, 'dashboard-live');
  await page.getByRole('button', { name: 'Rotate' }).first().click();
  const key = page.getByTestId('stream-key');
  await key.waitFor({ timeout: opts.timeout });
  result.key_hidden = (await key.getAttribute('type')) === 'password';
  await page.getByRole('button', { name: 'Reveal' }).click();
  result.key_revealed = (await key.getAttribute('type')) === 'text' && (await key.inputValue()).length > 20;
  emit({ event: 'rotated' });
  await page.locator('[data-testid=dashboard-live]', { hasText: 'Offline' }).waitFor({ timeout: opts.timeout });
  result.old_publish_stopped = true;
  await shot(page, 'dashboard');
  result.ok = true;
}

async function adminScenario() {
  const viewer = await newPage('viewer');
  await viewer.goto(`${opts.base}/watch/${opts.slug}`);
  await viewer.locator('.player[data-state=live]').waitFor({ timeout: opts.timeout });
  const admin = await newPage('admin');
  admin.on('dialog', (d) => d.accept());
  await login(admin, opts.admin, '/admin');
  const row = admin.locator(`[data-testid=admin-live] tr[data-channel="${opts.slug}"]`);
  await row.waitFor({ timeout: opts.timeout });
  await shot(admin, 'admin-live');
  await row.getByRole('button', { name: 'Kick' }).click();
  await admin.locator('.notice.ok', { hasText: 'Kicked' }).waitFor({ timeout: opts.timeout });
  emit({ event: 'kicked' });
  await viewer.locator('.player[data-state=offline]').waitFor({ timeout: opts.timeout });
  result.viewer_offline = true;
  for (const tab of ['Users', 'Channels & keys', 'Audit log', 'Replay retention']) {
    await admin.getByRole('tab', { name: tab }).click();
  }
  await admin.getByRole('tab', { name: 'Audit log' }).click();
  await admin.locator('code', { hasText: 'live.kick' }).first().waitFor({ timeout: opts.timeout }).catch(() => {});
  result.audit_shows_kick = (await admin.locator('code', { hasText: 'kick' }).count()) > 0;
  await shot(admin, 'admin-audit');
  result.ok = true;
}

async function authScenario() {
  const page = await newPage('viewer');
  await page.goto(`${opts.base}/login`);
  await page.getByLabel('Username').fill(opts.user.split(':')[0]);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('login-error').waitFor({ timeout: opts.timeout });
  result.wrong_password_refused = true;
  await shot(page, 'login-refused');
  await login(page, opts.user, '/');
  await page.getByTestId('who').waitFor({ timeout: opts.timeout });
  result.signed_in_as = (await page.getByTestId('who').textContent()).trim();
  await page.reload();
  result.kept_after_reload = await page.getByTestId('who').isVisible();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('link', { name: 'Log in' }).waitFor({ timeout: opts.timeout });
  await page.reload();
  result.signed_out_after_reload = (await page.getByTestId('who').count()) === 0;
  result.ok = true;
}

/// The replay page: the video plays from the start; a seek from before the first danmaku to
/// between it and the second skips the first; the second appears when playback reaches it;
/// pausing holds it where it is; playing again moves it and brings the third.
async function replayScenario() {
  const id = opts.replay;
  const all = await (await fetch(`${opts.base}/api/v1/recordings/${id}/danmaku`)).json();
  result.danmaku = all.map((d) => ({ text: d.text, offset_ms: d.offset_ms }));
  if (all.length !== 3) throw new Error(`expected 3 danmaku in replay ${id}, got ${all.length}`);
  const [early, middle, late] = all;
  const page = await newPage('viewer');
  // Every danmaku element the layer adds, with the media time it was added at: what the
  // viewer saw and when, independent of how often the driver polls.
  await page.addInitScript(() => {
    window.__shown = [];
    new MutationObserver((records) => {
      const v = document.querySelector('video');
      for (const r of records) {
        for (const n of r.addedNodes) {
          if (n.classList?.contains('danmaku-item')) {
            window.__shown.push({ text: n.textContent, at_ms: Math.round((v?.currentTime ?? 0) * 1000) });
          }
        }
      }
    }).observe(document, { childList: true, subtree: true });
  });
  await page.goto(`${opts.base}/replays/${id}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=danmaku-count]')?.textContent === '3', null, {
    timeout: opts.timeout,
  });
  result.danmaku_count_text = (await page.getByTestId('danmaku-count').textContent()).trim();
  const video = page.locator('video');
  await video.evaluate((v) => {
    v.muted = true;
    return v.play();
  });
  await page.waitForFunction(() => document.querySelector('video').currentTime > 0.3, null, {
    timeout: opts.timeout,
    polling: 50,
  });
  const first = await video.evaluate((v) => v.currentTime);
  await page.waitForFunction((t) => document.querySelector('video').currentTime > t + 0.2, first, {
    timeout: opts.timeout,
    polling: 50,
  });
  const seekTo = (early.offset_ms + middle.offset_ms) / 2;
  const seek = await video.evaluate((v, to) => {
    const from = v.currentTime * 1000;
    v.currentTime = to / 1000;
    return { from, shown: window.__shown.map((s) => s.text) };
  }, seekTo);
  result.advanced_ms = Math.round((seek.from - first * 1000));
  result.seek_from_ms = Math.round(seek.from);
  result.seek_to_ms = seekTo;
  result.shown_before_seek = seek.shown;
  emit({ event: 'seeked', from_ms: result.seek_from_ms, to_ms: seekTo });
  if (seek.from >= early.offset_ms) throw new Error(`playback passed the first danmaku (${early.offset_ms} ms) before the seek`);

  await page.waitForFunction((t) => window.__shown.some((s) => s.text === t), middle.text, {
    timeout: opts.timeout,
    polling: 50,
  });
  await video.evaluate((v) => v.pause());
  const item = page.locator('.danmaku-item', { hasText: middle.text });
  // Whether a paused danmaku stays put can only be seen over some frames; these are counted
  // in frames the page renders, so a slow machine still looks at the same number of them.
  const FRAMES = 30;
  const held = await item.evaluate(async (el, frames) => {
    const v = document.querySelector('video');
    const anims = () => el.getAnimations();
    const snap = () => ({
      x: Math.round(el.getBoundingClientRect().x),
      anim: anims().map((a) => a.currentTime),
      video: Math.round(v.currentTime * 1000),
      shown: window.__shown.length,
    });
    // The page pauses its danmaku on the video's `pause` event, which comes as a task of
    // its own after `pause()`: on a busy machine a frame or two later. Up to `frames`
    // frames are given for that; if it never happens, `play_states` below says so.
    for (let i = 0; i < frames && anims().some((a) => a.playState !== 'paused'); i += 1) {
      await new Promise((r) => requestAnimationFrame(r));
    }
    const before = snap();
    for (let i = 0; i < frames; i += 1) await new Promise((r) => requestAnimationFrame(r));
    const after = snap();
    return {
      frames,
      on_screen: el.isConnected,
      play_states: [...new Set(anims().map((a) => a.playState))],
      x_before: before.x,
      x_after: after.x,
      anim_before: before.anim,
      anim_after: after.anim,
      video_before: before.video,
      video_after: after.video,
      shown_during: after.shown - before.shown,
    };
  }, FRAMES);
  result.paused = held;
  await shot(page, 'replay-paused');
  await video.evaluate((v) => v.play());
  result.resumed_play_states = await item.evaluate((el) => [...new Set(el.getAnimations().map((a) => a.playState))]);
  await page.waitForFunction((t) => window.__shown.some((s) => s.text === t), late.text, {
    timeout: opts.timeout,
    polling: 50,
  });
  result.shown = await page.evaluate(() => window.__shown);
  await shot(page, 'replay');
  result.ok = true;
}

/// The slugs of the channel cards the home page shows, in page order.
const shownSlugs = (page) =>
  page.evaluate(() => [...document.querySelectorAll('main a[data-channel]')].map((a) => a.dataset.channel));

/// Waits until the home page shows exactly `want` (a comma-separated list, any order), then
/// returns what it shows; on a timeout, what it showed instead.
async function waitShown(page, want) {
  const expected = want.split(',').filter(Boolean).sort().join(',');
  await page
    .waitForFunction(
      (e) => [...document.querySelectorAll('main a[data-channel]')].map((a) => a.dataset.channel).sort().join(',') === e,
      expected,
      { timeout: opts.timeout, polling: 100 },
    )
    .catch(() => {});
  return shownSlugs(page);
}

/// The home page asks the server: typed text (after the typing pause), a category chip, a
/// tag on a card, and the next page of a long list.
async function searchScenario() {
  const page = await newPage('search');
  const directory = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/api/v1/channels') directory.push(u.search);
  });
  await page.goto(`${opts.base}/`);
  await page.locator('main a[data-channel]').first().waitFor({ timeout: opts.timeout });

  const box = page.getByLabel('Search channels');
  const before = directory.length;
  await box.pressSequentially(opts.query, { delay: 30 });
  result.query = await waitShown(page, opts['query-shows']);
  // Printed, not checked: how many requests the typing pause saved depends on the machine.
  result.typing_requests = directory.length - before;
  await shot(page, 'home-search');

  await box.fill('');
  await page.locator(`.chips [data-category="${opts.category}"]`).click();
  result.category = await waitShown(page, opts['category-shows']);
  result.category_pressed = await page.locator(`.chips [data-category="${opts.category}"]`).getAttribute('aria-pressed');
  await shot(page, 'home-category');
  await page.locator('.chips .chip', { hasText: 'All' }).click();

  await page.getByRole('button', { name: `#${opts.tag}` }).first().click();
  result.tag = await waitShown(page, opts['tag-shows']);
  result.tag_box = await box.inputValue();
  // The address names the search, so a reload (or a shared link) shows it again.
  await page.waitForURL((u) => u.search !== '', { timeout: opts.timeout });
  result.tag_url = new URL(page.url()).search;
  await page.reload();
  result.tag_reloaded = await waitShown(page, opts['tag-shows']);
  result.tag_box_reloaded = await box.inputValue();
  // The header's Browse link is a bare `/`: every channel again.
  await page.getByRole('link', { name: 'Browse', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('main a[data-channel]').length > 1, null, {
    timeout: opts.timeout,
  });
  result.browse_box = await box.inputValue();

  await box.fill('nothing-is-called-this');
  await page.getByTestId('no-match').waitFor({ timeout: opts.timeout });
  result.no_match = await page.getByTestId('no-match').textContent();

  await box.fill(opts.more);
  const firstPage = Number(opts['more-first']);
  await page.waitForFunction((n) => document.querySelectorAll('main a[data-channel]').length === n, firstPage, {
    timeout: opts.timeout,
  });
  result.more_first = (await shownSlugs(page)).length;
  await page.getByRole('button', { name: 'Load more channels' }).click();
  result.more = await waitShown(page, opts['more-shows']);
  result.more_button_left = await page.getByRole('button', { name: 'Load more channels' }).count();
  result.ok = true;
}

/// The widths of `path` at 375 px: no horizontal scroll wanted.
async function phoneWidths(page, name, path) {
  await page.goto(`${opts.base}${path}`);
  await page.locator('main h1').first().waitFor({ timeout: opts.timeout });
  await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => {});
  const widths = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  const path_ = join(opts.out, `phone-${name}.png`);
  await page.screenshot({ path: path_, fullPage: true });
  return { ...widths, screenshot: path_ };
}

/// The videos catalogue (--video ID, --title NEW): the card on /videos with its thumbnail,
/// its page plays and counts a view, a viewer's comment shows and a second one is refused
/// (the test's rate limit), the owner retitles it; both pages at phone width; made private,
/// it still plays for its owner.
async function videosScenario() {
  const id = opts.video;
  const page = await newPage('viewer');
  await login(page, opts.user, '/videos');
  const card = page.locator(`article[data-video="${id}"]`);
  await card.waitFor({ timeout: opts.timeout });
  result.card_text = (await card.innerText()).replace(/\s+/g, ' ').trim();
  const img = card.locator('.thumb img');
  if (await img.count()) {
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle(), {
      timeout: opts.timeout,
    });
    result.thumbnail_shown = await img.evaluate((el) => ({ width: el.naturalWidth, height: el.naturalHeight }));
  } else {
    result.thumbnail_shown = null;
    result.placeholder_shown = (await card.getByTestId('no-thumbnail').count()) === 1;
  }
  await shot(page, 'videos');
  await card.locator('a.card-link').click();
  await page.waitForURL((u) => u.pathname === `/videos/${id}`, { timeout: opts.timeout });
  // The details line is drawn once the video's JSON is in, the title with it.
  await page.getByTestId('view-count').waitFor({ timeout: opts.timeout });
  result.title_before = (await page.getByTestId('video-title').textContent()).trim();
  const video = page.locator('video');
  await video.waitFor({ timeout: opts.timeout });
  await video.evaluate((v) => {
    v.muted = true;
    return v.play();
  });
  await page.waitForFunction(() => document.querySelector('video').currentTime > 0.3, null, {
    timeout: opts.timeout,
    polling: 50,
  });
  const first = await video.evaluate((v) => v.currentTime);
  await page.waitForFunction((t) => document.querySelector('video').currentTime > t + 1, first, {
    timeout: opts.timeout,
    polling: 100,
  });
  result.played = await videoState(page);
  await page.waitForFunction(() => document.querySelector('[data-testid=view-count]')?.textContent.trim() === '1', null, {
    timeout: opts.timeout,
  });
  result.view_count_text = (await page.getByTestId('view-count').textContent()).trim();
  emit({ event: 'played', currentTime: result.played.currentTime });

  const text = `a comment from the browser ${Date.now() % 100000}`;
  await page.getByLabel('Add a comment').fill(text);
  await page.getByRole('button', { name: 'Comment', exact: true }).click();
  await page.locator('[data-testid=comments] .comment', { hasText: text }).waitFor({ timeout: opts.timeout });
  // Seen again after a reload: it was stored, not only drawn.
  await page.reload();
  await page.locator('[data-testid=comments] .comment', { hasText: text }).waitFor({ timeout: opts.timeout });
  result.comment_seen = text;
  // The test allows one comment a minute: the next is refused, and the form says why.
  await page.getByLabel('Add a comment').fill(`${text} again`);
  await page.getByRole('button', { name: 'Comment', exact: true }).click();
  const refused = page.getByTestId('comment-error');
  await refused.waitFor({ timeout: opts.timeout });
  result.rate_limited = (await refused.textContent()).trim();
  result.viewer_sees_edit = await page.getByRole('button', { name: 'Edit video' }).count();
  await shot(page, 'video');

  const owner = await newPage('owner');
  await login(owner, opts.streamer, `/videos/${id}`);
  await owner.getByRole('button', { name: 'Edit video' }).click();
  await owner.getByLabel('Title').fill(opts.title);
  await owner.getByRole('button', { name: 'Save' }).click();
  await owner.waitForFunction((t) => document.querySelector('[data-testid=video-title]')?.textContent.trim() === t, opts.title, {
    timeout: opts.timeout,
  });
  // The owner may delete the viewer's comment; a viewer may delete only their own.
  result.owner_may_delete_comment = await owner.locator('[data-testid=comments] .comment', { hasText: text }).getByRole('button', { name: 'Delete' }).count();
  result.title_after = (await owner.getByTestId('video-title').textContent()).trim();

  const phone = await newPage('phone-videos', { width: 375, height: 812 });
  result.pages = {
    videos: await phoneWidths(phone, 'videos', '/videos'),
    video: await phoneWidths(phone, 'video', `/videos/${id}`),
  };

  // Made private, it still plays for its owner: hls.js sends the token with each request.
  await owner.getByRole('button', { name: 'Edit video' }).click();
  await owner.getByLabel('Visibility').selectOption('private');
  await owner.getByRole('button', { name: 'Save' }).click();
  await owner.getByRole('button', { name: 'Edit video' }).waitFor({ timeout: opts.timeout });
  await owner.reload();
  const ownVideo = owner.locator('video');
  await ownVideo.waitFor({ timeout: opts.timeout });
  await ownVideo.evaluate((v) => {
    v.muted = true;
    return v.play();
  });
  await owner.waitForFunction(() => document.querySelector('video').currentTime > 0.5, null, {
    timeout: opts.timeout,
    polling: 100,
  });
  result.private_played = await videoState(owner);
  result.ok = Object.values(result.pages).every((p) => p.scroll <= p.client);
}

/// Each page at 375 px wide: a screenshot, and no horizontal scroll.
async function phoneScenario() {
  const viewport = { width: 375, height: 812 };
  const pages = [];
  const anon = await newPage('phone', viewport);
  const replays = await (await fetch(`${opts.base}/api/v1/replays`)).json();
  const replayId = replays.items[0]?.id;
  pages.push([anon, 'home', '/']);
  pages.push([anon, 'watch', `/watch/${opts.slug}`]);
  pages.push([anon, 'videos', '/videos']);
  if (replayId) pages.push([anon, 'replay', `/replays/${replayId}`]);
  pages.push([anon, 'login', '/login']);
  pages.push([anon, 'register', '/register']);
  const streamer = await newPage('phone-streamer', viewport);
  await login(streamer, opts.streamer, '/dashboard');
  pages.push([streamer, 'dashboard', '/dashboard']);
  const admin = await newPage('phone-admin', viewport);
  await login(admin, opts.admin, '/admin');
  pages.push([admin, 'admin', '/admin']);
  result.pages = {};
  for (const [page, name, path] of pages) {
    await page.goto(`${opts.base}${path}`);
    await page.locator('main h1').first().waitFor({ timeout: opts.timeout });
    // Let the page's first data arrive before measuring it.
    await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => {});
    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    const path_ = join(opts.out, `phone-${name}.png`);
    await page.screenshot({ path: path_, fullPage: true });
    result.pages[name] = { ...widths, screenshot: path_ };
  }
  for (const theme of ['light']) {
    const page = await browser.newContext({ viewport, colorScheme: theme }).then((c) => c.newPage());
    watchConsole(page, `phone-${theme}`);
    await page.goto(`${opts.base}/`);
    await page.locator('main h1').first().waitFor({ timeout: opts.timeout });
    await page.screenshot({ path: join(opts.out, `phone-home-${theme}.png`), fullPage: true });
  }
  result.ok = Object.values(result.pages).every((p) => p.scroll <= p.client);
}

try {
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: [
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
  const scenarios = {
    watch: watchScenario,
    'watch-hls': watchHlsScenario,
    offline: offlineScenario,
    dashboard: dashboardScenario,
    admin: adminScenario,
    auth: authScenario,
    phone: phoneScenario,
    replay: replayScenario,
    search: searchScenario,
    videos: videosScenario,
  };
  const run = scenarios[opts.scenario];
  if (!run) throw new Error(`unknown scenario ${opts.scenario}`);
  await run();
} catch (e) {
  result.ok = false;
  result.errors.push(`driver: ${e.message.split('\n').slice(0, 3).join(' | ')}`);
} finally {
  if (browser) await browser.close().catch(() => {});
}
emit(result);
process.exit(result.ok ? 0 : 1);
