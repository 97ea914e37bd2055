// Private mode: the engine's pipeline in this page, so that no camera frame leaves the device.
// The shipped ONNX models run in ONNX Runtime Web (WebAssembly); every number comes from private/pipeline.json,
// which emorec.browser writes from the Python modules that define it. Each step below follows its Python
// original (named in its comment) closely enough that both give the same faces (tests/test_private_mode.py):
// where OpenCV resizes or converts pixels, the same arithmetic is done here.
// window.emorecPrivate.load(base) gives an engine: analyse(imageData) -> the answer the server's live socket
// gives for a frame (boxes, emotions, scores, track ids, calibration), command(text) runs the socket's
// text commands (Calibrate, Reset), reset() forgets the tracks.
"use strict";

window.emorecPrivate = (() => {
  // Python's round(): halves go to the even neighbour (boxes and crop corners are rounded so in the engine).
  const roundEven = (v) => {
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 ? r - 1 : r;
  };
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  // The engine's crop arithmetic is float32 (NumPy boxes): a crop corner at x.5 rounds by it.
  const f32 = Math.fround;

  // Images are {width, height, channels, data}: RGBA frames as canvases give them, or one grey channel.
  const image = (width, height, channels) =>
    ({ width, height, channels, data: new Uint8ClampedArray(width * height * channels) });

  // OpenCV's INTER_AREA for an exact halving: each pixel the rounded mean of four. (Alpha, unused, stays 0.)
  function halve(src) {
    const { width, channels: c, data } = src, out = image(width >> 1, src.height >> 1, c);
    const colours = Math.min(c, 3), row = width * c;
    for (let y = 0, o = 0; y < out.height; y++) {
      for (let x = 0, a = 2 * y * row; x < out.width; x++, a += 2 * c, o += c) {
        for (let k = 0; k < colours; k++) {
          out.data[o + k] = (data[a + k] + data[a + c + k] + data[a + row + k] + data[a + row + c + k] + 2) >> 2;
        }
      }
    }
    return out;
  }

  // OpenCV's INTER_LINEAR (half-pixel centres, edge pixels repeated, 11-bit fixed-point weights, and the
  // rounding of its SIMD vertical pass), so that the detector sees the pixels it sees in Python.
  function linearTaps(srcLength, dstLength) {
    const scale = srcLength / dstLength, index = new Int32Array(dstLength), weight = new Int32Array(dstLength);
    for (let d = 0; d < dstLength; d++) {
      let f = Math.fround((d + 0.5) * scale - 0.5), s = Math.floor(f);
      f -= s;
      if (s < 0) { f = 0; s = 0; }
      if (s >= srcLength - 1) { f = 0; s = srcLength - 1; }
      index[d] = s;
      weight[d] = Math.round(f * 2048);
    }
    return { index, weight };
  }
  function resizeLinear(src, width, height) {
    if (src.width === width && src.height === height) return src;
    const c = src.channels, out = image(width, height, c);
    const xs = linearTaps(src.width, width), ys = linearTaps(src.height, height);
    const rowA = new Int32Array(width * c), rowB = new Int32Array(width * c);
    const horizontal = (row, y) => {
      const base = y * src.width;
      for (let x = 0; x < width; x++) {
        const s = xs.index[x], w = xs.weight[x], next = Math.min(s + 1, src.width - 1);
        for (let k = 0; k < c; k++) {
          row[x * c + k] = src.data[(base + s) * c + k] * (2048 - w) + src.data[(base + next) * c + k] * w;
        }
      }
    };
    for (let y = 0; y < height; y++) {
      const s = ys.index[y], w = ys.weight[y];
      horizontal(rowA, s);
      horizontal(rowB, Math.min(s + 1, src.height - 1));
      for (let i = 0; i < width * c; i++) {
        out.data[y * width * c + i] = ((((rowA[i] >> 4) * (2048 - w)) >> 16) + (((rowB[i] >> 4) * w) >> 16) + 2) >> 2;
      }
    }
    return out;
  }

  // detect._shrink: exact halvings by pixel averaging, then bilinear for the last factor under 2. Kept with the
  // frame, for any pass over it at a size another pass already asked for.
  function shrink(frame, width, height) {
    const key = `${width}x${height}`;
    frame.shrunk ??= new Map();
    if (!frame.shrunk.has(key)) {
      let src = frame;
      while (src.width >= 2 * width && src.height >= 2 * height && !((src.width | src.height) & 1)) src = halve(src);
      frame.shrunk.set(key, resizeLinear(src, width, height));
    }
    return frame.shrunk.get(key);
  }

  // OpenCV's INTER_AREA on one grey channel: each output pixel the mean of the source area it covers.
  function resizeArea(src, size) {
    if (src.width === 2 * size && src.height === 2 * size) return halve(src); // OpenCV's own rounding there
    const scaleX = src.width / size, scaleY = src.height / size;
    const taps = (scale, length) => Array.from({ length: size }, (_, d) => {
      const start = d * scale, end = Math.min((d + 1) * scale, length), parts = [];
      for (let s = Math.floor(start); s < end; s++) {
        const w = Math.min(s + 1, end) - Math.max(s, start);
        if (w > 1e-9) parts.push([s, w / (end - start)]);
      }
      return parts;
    });
    const tx = taps(scaleX, src.width), ty = taps(scaleY, src.height), out = image(size, size, 1);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let sum = 0;
        for (const [sy, wy] of ty[y]) for (const [sx, wx] of tx[x]) sum += src.data[sy * src.width + sx] * wy * wx;
        out.data[y * size + x] = roundEven(sum);
      }
    }
    return out;
  }

  // OpenCV's BGR2GRAY of the pixel at `i`: 0.299 R + 0.587 G + 0.114 B in 14-bit fixed point.
  const greyOf = (data, i) => (data[i] * 4899 + data[i + 1] * 9617 + data[i + 2] * 1868 + 8192) >> 14;

  // engine._square: the grey square of `side` pixels around (cx, cy), edges repeated, shrunk to `size`.
  function square(frame, cx, cy, side, size) {
    const left = roundEven(f32(cx - f32(side / 2))), top = roundEven(f32(cy - f32(side / 2)));
    const length = Math.max(1, roundEven(side));
    const x0 = Math.max(left, 0), y0 = Math.max(top, 0);
    const x1 = Math.min(left + length, frame.width), y1 = Math.min(top + length, frame.height);
    if (x1 <= x0 || y1 <= y0) return image(size, size, 1);
    const grey = image(length, length, 1), c = frame.channels;
    for (let y = 0; y < length; y++) {
      const row = clamp(top + y, y0, y1 - 1) * frame.width;
      for (let x = 0; x < length; x++) {
        grey.data[y * length + x] = greyOf(frame.data, (row + clamp(left + x, x0, x1 - 1)) * c);
      }
    }
    return resizeArea(grey, size);
  }

  // engine.roll_degrees: the eye line's angle, within +-max_roll; 0 where unknown.
  function rollDegrees([[x1, y1], [x2, y2]], maxRoll) {
    if (![x1, y1, x2, y2].every(Number.isFinite) || (x1 === x2 && y1 === y2)) return 0;
    let angle = Math.atan2(y1 - y2, x2 - x1) * 180 / Math.PI;
    angle = ((angle + 90) % 180 + 180) % 180 - 90;
    return clamp(angle, -maxRoll, maxRoll);
  }

  // cv2.warpAffine of a grey square turned by `angle` degrees about its middle (getRotationMatrix2D(-angle)):
  // OpenCV's fixed point (source positions in 1/32 pixels, 15-bit bilinear weights), edges repeated.
  function turn(src, angle) {
    const n = src.width, middle = (n - 1) / 2, out = image(n, n, 1);
    const a = Math.cos(-angle * Math.PI / 180), b = Math.sin(-angle * Math.PI / 180);
    // The inverse of [[a, b, tx], [-b, a, ty]] (cv2.invertAffineTransform): where each output pixel comes from.
    const tx = (1 - a) * middle - b * middle, ty = b * middle + (1 - a) * middle, det = 1 / (a * a + b * b);
    const inv = [a * det, -b * det, 0, b * det, a * det, 0];
    inv[2] = -inv[0] * tx - inv[1] * ty;
    inv[5] = -inv[3] * tx - inv[4] * ty;
    const at = (px, py) => src.data[clamp(py, 0, n - 1) * n + clamp(px, 0, n - 1)];
    for (let y = 0; y < n; y++) {
      const x0 = Math.round((inv[1] * y + inv[2]) * 1024) + 16, y0 = Math.round((inv[4] * y + inv[5]) * 1024) + 16;
      for (let x = 0; x < n; x++) {
        const X = (x0 + Math.round(inv[0] * x * 1024)) >> 5, Y = (y0 + Math.round(inv[3] * x * 1024)) >> 5;
        const sx = X >> 5, sy = Y >> 5, fx = (X & 31) / 32, fy = (Y & 31) / 32;
        const w = [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx].map((v) => Math.round(v * 32768));
        const sum = at(sx, sy) * w[0] + at(sx + 1, sy) * w[1] + at(sx, sy + 1) * w[2] + at(sx + 1, sy + 1) * w[3];
        out.data[y * n + x] = (sum + (1 << 14)) >> 15;
      }
    }
    return out;
  }

  // engine.crop_faces: FER2013-like 48x48 grey crops, levelled by the eyes where they tilt enough.
  function cropFace(frame, [x1, y1, x2, y2], eyes, crop) {
    const side = f32(Math.max(x2 - x1, y2 - y1) * f32(crop.scale));
    const cx = f32((x1 + x2) / 2), cy = f32(f32((y1 + y2) / 2) + f32(f32(crop.shift_y) * (y2 - y1)));
    const angle = crop.level_eyes ? rollDegrees(eyes, crop.max_roll) : 0;
    if (Math.abs(angle) < crop.min_roll) return square(frame, cx, cy, side, crop.face_size);
    const wide = turn(square(frame, cx, cy, f32(f32(side * crop.turn_size) / crop.face_size), crop.turn_size), angle);
    const margin = (crop.turn_size - crop.face_size) >> 1, out = image(crop.face_size, crop.face_size, 1);
    for (let y = 0; y < crop.face_size; y++) {
      const from = (y + margin) * wide.width + margin;
      out.data.set(wide.data.subarray(from, from + crop.face_size), y * crop.face_size);
    }
    return out;
  }

  // track.iou_matrix for two boxes.
  function iou(a, b) {
    const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const inter = w * h, union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return inter / Math.max(union, 1e-6);
  }

  // detect.nms (OpenCV's NMSBoxes): best first; a box overlapping a kept one by more than the threshold goes.
  function nms(found, threshold) {
    const kept = [];
    for (const d of [...found].sort((p, q) => q.score - p.score)) {
      if (kept.every((k) => iou(k.box, d.box) <= threshold)) kept.push(d);
    }
    return kept;
  }

  // detect._ssd_anchor_centres: anchor centres in input pixels, in the model's output order.
  function anchorCentres(spec, height, width) {
    const centres = [];
    for (let layer = 0; layer < spec.strides.length;) {
      const stride = spec.strides[layer];
      let same = 0;
      while (layer < spec.strides.length && spec.strides[layer] === stride) { same++; layer++; }
      const perCell = same * (spec.interpolated_anchor ? 2 : 1);
      for (let r = 0; r < Math.ceil(height / stride); r++) {
        for (let c = 0; c < Math.ceil(width / stride); c++) {
          for (let k = 0; k < perCell; k++) centres.push([(c + 0.5) * stride, (r + 0.5) * stride]);
        }
      }
    }
    return centres;
  }

  // detect.BlazeFaceDetector: one model and its decoding.
  class BlazeFace {
    constructor(session, spec, config) {
      Object.assign(this, { session, spec, config, anchors: new Map() });
      this.logitThreshold = Math.log(spec.score_threshold / (1 - spec.score_threshold));
    }

    // BlazeFaceDetector._run: one pass over the frame resized by `scale`, letterboxed into the square input or
    // (scan) padded right and down to multiples of the scan stride; boxes under `minFace` input pixels dropped.
    async run(frame, scale, minFace = 0, scan = false) {
      const size = this.spec.input_size, stride = scan ? this.spec.scan.stride : 1;
      const newW = Math.max(1, roundEven(frame.width * scale)), newH = Math.max(1, roundEven(frame.height * scale));
      const inW = scan ? Math.ceil(newW / stride) * stride : size;
      const inH = scan ? Math.ceil(newH / stride) * stride : size;
      const padX = scan ? 0 : (size - newW) >> 1, padY = scan ? 0 : (size - newH) >> 1;
      const resized = shrink(frame, newW, newH), c = resized.channels, plane = inW * inH;
      const tensor = new Float32Array(3 * plane).fill(-1);
      for (let y = 0; y < newH; y++) {
        for (let x = 0; x < newW; x++) {
          const i = (y * newW + x) * c, o = (y + padY) * inW + x + padX;
          for (let k = 0; k < 3; k++) tensor[k * plane + o] = (resized.data[i + k] - 127.5) / 127.5; // RGB to [-1, 1]
        }
      }
      const input = new ort.Tensor("float32", tensor, [1, 3, inH, inW]);
      const outputs = await this.session.run({ [this.session.inputNames[0]]: input });
      const [regressors, logits] = this.session.outputNames.map((name) => outputs[name].data);
      const key = `${inH}x${inW}`;
      if (!this.anchors.has(key)) this.anchors.set(key, anchorCentres(this.spec, inH, inW));
      const anchors = this.anchors.get(key), per = regressors.length / logits.length, found = [];
      for (let a = 0; a < logits.length; a++) {
        if (!(logits[a] > this.logitThreshold)) continue;
        const raw = regressors.subarray(a * per, a * per + 8);
        if (minFace && Math.max(raw[2], raw[3]) < minFace) continue;
        const [ax, ay] = anchors[a], cx = ax + raw[0], cy = ay + raw[1];
        const box = [cx - raw[2] / 2 - padX, cy - raw[3] / 2 - padY, cx + raw[2] / 2 - padX, cy + raw[3] / 2 - padY]
          .map((v) => v / scale);
        // The keypoints follow the box: the first two of MediaPipe's six are the eyes.
        const eyes = [[ax + raw[4] - padX, ay + raw[5] - padY], [ax + raw[6] - padX, ay + raw[7] - padY]]
          .map(([x, y]) => [x / scale, y / scale]);
        found.push({ box, eyes, score: 1 / (1 + Math.exp(-clamp(logits[a], -100, 100))) });
      }
      const [w, h] = [frame.width, frame.height];
      const inside = (d) => ({ ...d, box: d.box.map((v, i) => clamp(v, 0, i % 2 ? h : w)) });
      return nms(found, this.config.iou_threshold).map(inside);
    }

    // BlazeFaceDetector._detect_once: letterboxed whole, or (a model with a scan) scanned at its scan scale.
    async detect(frame) {
      const long = Math.max(frame.width, frame.height), whole = this.spec.input_size / long, scan = this.spec.scan;
      if (!scan) return this.run(frame, whole);
      const scale = Math.min(scan.scale, scan.max_side / long);
      if (scale <= whole) return this.run(frame, whole, scan.min_face);
      const found = await this.run(frame, scale, scan.min_face, true);
      if (scan.max_face == null || Math.min(frame.width, frame.height) * scale <= scan.max_face) return found;
      return nms([...found, ...await this.run(frame, whole, scan.min_face)], this.config.iou_threshold);
    }
  }

  // detect.CropCheck._look_again: the best detection overlapping `box` on a grey-padded square around it.
  async function lookAgain(look, frame, box, check) {
    const context = look.spec.input_size / check.face;
    const side = Math.max(2, roundEven(context * Math.max(box[2] - box[0], box[3] - box[1])));
    const x0 = roundEven((box[0] + box[2] - side) / 2), y0 = roundEven((box[1] + box[3] - side) / 2);
    const crop = image(side, side, frame.channels);
    crop.data.fill(128);
    let inside = false;
    for (let y = Math.max(0, y0); y < Math.min(frame.height, y0 + side); y++) {
      for (let x = Math.max(0, x0); x < Math.min(frame.width, x0 + side); x++) {
        const from = (y * frame.width + x) * frame.channels;
        crop.data.set(frame.data.subarray(from, from + frame.channels), ((y - y0) * side + x - x0) * frame.channels);
        inside = true;
      }
    }
    if (!inside) return null;
    for (const d of await look.detect(crop)) {
      const moved = { ...d, box: d.box.map((v, i) => v + (i % 2 ? y0 : x0)),
        eyes: d.eyes.map(([x, y]) => [x + x0, y + y0]) };
      if (iou(moved.box, box) >= check.overlap) return moved;
    }
    return null;
  }

  // detect.MergedDetector with its CropCheck: full range's and short range's scans, merged, unsure faces looked at
  // again.
  async function detectFaces(detectors, frame, config) {
    const pooled = [...await detectors.full.detect(frame), ...await detectors.short.detect(frame)];
    const threshold = config.iou_threshold;
    // Where several passes found a face, its eyes are their average weighted by score.
    const kept = nms(pooled, threshold).map((k) => {
      const near = pooled.filter((p) => iou(k.box, p.box) >= threshold);
      const total = near.reduce((sum, p) => sum + p.score, 0);
      const mean = (e, j) => near.reduce((sum, p) => sum + p.eyes[e][j] * p.score, 0) / Math.max(total, 1e-9);
      const eyes = [[mean(0, 0), mean(0, 1)], [mean(1, 0), mean(1, 1)]];
      return { ...k, eyes: total > 0 ? eyes : k.eyes };
    });
    const check = config.check;
    // A thumbnail gets no second look, so it keeps no face proposed under the floor; elsewhere those get the
    // first look only.
    const thumbnail = Math.max(frame.width, frame.height) <= Math.min(...detectors.looks.map((l) => l.spec.input_size));
    if (thumbnail) return kept.filter((d) => d.score >= check.floor);
    const confirmed = kept.filter((d) => d.score >= check.sure);
    for (const d of kept.filter((k) => k.score < check.sure)) {
      for (const look of d.score >= check.floor ? detectors.looks : detectors.looks.slice(0, 1)) {
        const again = await lookAgain(look, frame, d.box, check);
        if (again) { confirmed.push(again); break; }
      }
    }
    return nms(confirmed, threshold);
  }

  // track.FaceTracker: greedy matching (overlap, then distance to where each track is expected) and EMA smoothing.
  class Tracker {
    constructor(settings) { Object.assign(this, settings); this.reset(); }
    reset() { this.tracks = []; this.nextId = 1; }
    static centre(b) { return [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]; }
    predicted(t) {
      const steps = Math.min(t.missed + 1, this.coast), [vx, vy] = t.velocity;
      return [t.box[0] + vx * steps, t.box[1] + vy * steps, t.box[2] + vx * steps, t.box[3] + vy * steps];
    }
    match(boxes) {
      const assignment = boxes.map(() => null), taken = new Set();
      if (!this.tracks.length || !boxes.length) return assignment;
      const predicted = this.tracks.map((t) => this.predicted(t));
      const assign = (pairs) => {
        for (const [, t, f] of pairs.sort((p, q) => p[0] - q[0])) {
          if (assignment[f] === null && !taken.has(t)) { assignment[f] = this.tracks[t]; taken.add(t); }
        }
      };
      const overlaps = [];
      predicted.forEach((p, t) => boxes.forEach((b, f) => {
        const v = iou(p, b);
        if (v >= this.iou_threshold) overlaps.push([-v, t, f]);
      }));
      assign(overlaps);
      const side = (b) => Math.sqrt(Math.max((b[2] - b[0]) * (b[3] - b[1]), 1));
      const near = [];
      predicted.forEach((p, t) => boxes.forEach((b, f) => {
        const [px, py] = Tracker.centre(p), [bx, by] = Tracker.centre(b);
        const distance = Math.hypot(px - bx, py - by) / Math.sqrt(side(p) * side(b));
        const mismatch = Math.abs(Math.log(side(b) / side(p)));
        const widen = Math.min(1 + this.tracks[t].missed / 4, 4);
        if (distance <= this.reach * widen && mismatch <= this.sizes * Math.sqrt(widen)) {
          near.push([distance + mismatch, t, f]);
        }
      }));
      assign(near);
      return assignment;
    }
    update(boxes, probs) {
      const assignment = this.match(boxes), seen = new Set();
      const out = assignment.map((track, f) => {
        if (track === null) {
          track = { id: this.nextId++, box: boxes[f], probs: probs[f].slice(), missed: 0, velocity: [0, 0] };
          this.tracks.push(track);
        } else {
          const [nx, ny] = Tracker.centre(boxes[f]), [ox, oy] = Tracker.centre(track.box);
          const weight = 0.5 / (track.missed + 1);
          track.velocity = [nx - ox, ny - oy]
            .map((shift, i) => weight * shift / (track.missed + 1) + (1 - weight) * track.velocity[i]);
          track.box = boxes[f];
          track.probs = track.probs.map((p, i) => this.alpha * probs[f][i] + (1 - this.alpha) * p);
          track.missed = 0;
        }
        seen.add(track.id);
        return { id: track.id, probs: track.probs.slice() };
      });
      for (const t of this.tracks) if (!seen.has(t.id)) t.missed += 1;
      this.tracks = this.tracks.filter((t) => t.missed <= this.max_missed);
      return out;
    }
  }

  // The mean grey of each k x k block of the `width` x `height` blocks from (x0, y0), all inside the frame.
  function blockGrey(frame, x0, y0, width, height, k) {
    const out = new Float32Array(width * height), { data, channels: c } = frame;
    for (let y = 0; y < height * k; y++) {
      const row = (y0 + y) * frame.width, cells = ((y / k) | 0) * width;
      for (let x = 0; x < width * k; x++) out[cells + ((x / k) | 0)] += greyOf(data, (row + x0 + x) * c);
    }
    return out.map((v) => v / (k * k));
  }

  // follow._template: the box's grey pixels shrunk to a small square, zero mean and unit norm.
  function faceTemplate(frame, box, size) {
    const [x1, y1, x2, y2] = box.map((v, i) => clamp(roundEven(v), 0, i % 2 ? frame.height : frame.width));
    const out = new Float32Array(size * size);
    if (x2 - x1 < 2 || y2 - y1 < 2) return out;
    const patch = image(x2 - x1, y2 - y1, 1);
    for (let y = y1; y < y2; y++) {
      for (let x = x1; x < x2; x++) {
        patch.data[(y - y1) * patch.width + x - x1] = greyOf(frame.data, (y * frame.width + x) * frame.channels);
      }
    }
    out.set(resizeArea(patch, size).data);
    return unit(out);
  }

  // Zero mean and unit norm (all zeros where flat).
  function unit(values) {
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    for (let i = 0; i < values.length; i++) values[i] -= mean;
    const norm = Math.sqrt(values.reduce((a, v) => a + v * v, 0));
    return norm > 0 ? values.map((v) => v / norm) : values;
  }

  // Where `pattern` (pw x ph, unit()) lies in `region` (rw x rh): the offset, in cells and to a fraction of one
  // (a parabola through the best score and its neighbours), with the highest normalised correlation; `edge`
  // when that is on the border of the offsets searched, i.e. the face may be farther.
  function bestMatch(region, rw, rh, pattern, pw, ph) {
    // Integral images of the region and its squares: each window's own mean and spread in constant time.
    const sum = new Float64Array((rw + 1) * (rh + 1)), squares = new Float64Array((rw + 1) * (rh + 1));
    for (let y = 0; y < rh; y++) {
      let row = 0, rowSquares = 0;
      for (let x = 0; x < rw; x++) {
        const v = region[y * rw + x], i = (y + 1) * (rw + 1) + x + 1;
        row += v; rowSquares += v * v;
        sum[i] = sum[i - rw - 1] + row; squares[i] = squares[i - rw - 1] + rowSquares;
      }
    }
    const box = (table, x, y) => table[(y + ph) * (rw + 1) + x + pw] - table[y * (rw + 1) + x + pw] -
      table[(y + ph) * (rw + 1) + x] + table[y * (rw + 1) + x];
    const across = rw - pw + 1, down = rh - ph + 1, n = pw * ph, scores = new Float32Array(across * down);
    let best = 0;
    for (let v = 0; v < down; v++) {
      for (let u = 0; u < across; u++) {
        let dot = 0; // the pattern has zero mean: the window's own mean adds nothing
        for (let j = 0; j < ph; j++) {
          const r = (v + j) * rw + u, p = j * pw;
          for (let i = 0; i < pw; i++) dot += pattern[p + i] * region[r + i];
        }
        const s = box(sum, u, v), spread = box(squares, u, v) - s * s / n;
        const score = spread > 1e-6 ? dot / Math.sqrt(spread) : 0, at = v * across + u;
        scores[at] = score;
        if (score > scores[best]) best = at;
      }
    }
    const u = best % across, v = (best / across) | 0, peak = scores[best];
    const refine = (before, after) => {
      const curve = before - 2 * peak + after;
      return curve < 0 ? clamp((before - after) / (2 * curve), -0.5, 0.5) : 0;
    };
    const edge = u === 0 || v === 0 || u === across - 1 || v === down - 1;
    if (edge) return { edge, score: peak };
    const x = u + refine(scores[best - 1], scores[best + 1]);
    return { x, y: v + refine(scores[best - across], scores[best + across]), score: peak, edge };
  }

  // follow.FaceFollower: the detector on every detect_every-th frame, and at once when a face cannot be followed
  // (it left the reach of the search, reached the frame's edge, or no longer looks like the face detected);
  // faces followed in between. Python follows corner points by optical flow; here each face's box moves, by a
  // block-matching search, to where its look at detection is best matched near where its last move would take
  // it (shift only: the box keeps its size and the eyes move with it). A face followed well up to a scheduled
  // detection that misses it is kept through that one detection, as in Python.
  class Follower {
    constructor(settings) { this.settings = settings; this.reset(); }
    reset() { this.following = null; this.size = null; this.since = 0; }

    // FaceFollower.faces: this frame's faces, from `detect(frame)` when due or when following fails, else
    // followed; and the ms spent: "detect" when the detector ran, "follow" for following and seeding.
    async faces(frame, detect) {
      let start = performance.now();
      if (this.settings.detect_every === 1) {
        const found = await detect(frame);
        return { found, spent: { detect: performance.now() - start } };
      }
      const followed = this.following && this.size === `${frame.width}x${frame.height}` ? this.follow(frame) : null;
      const spent = { follow: performance.now() - start };
      if (followed && this.since + 1 < this.settings.detect_every) {
        this.since += 1;
        return { found: followed, spent };
      }
      start = performance.now();
      const found = await detect(frame);
      spent.detect = performance.now() - start;
      start = performance.now();
      const all = this.seed(frame, found, followed ? this.blinked(found) : []);
      spent.follow += performance.now() - start;
      return { found: all, spent };
    }

    // FaceFollower._blinked: the faces just followed that a scheduled detection missed (none of its boxes
    // overlaps theirs or is centred in them), unless already carried once.
    blinked(found) {
      const centre = (b) => [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
      const inside = ([x, y], b) => x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];
      return this.following.filter((face) => !face.carried && !found.some((d) =>
        iou(face.box, d.box) >= this.settings.carry_overlap || inside(centre(d.box), face.box)));
    }

    // FaceFollower._seed: start following the faces just detected and those carried over; returns all of them.
    seed(frame, found, carried) {
      const { face_pixels: pixels, template } = this.settings;
      this.size = `${frame.width}x${frame.height}`;
      this.since = 0;
      this.following = found.map(({ box, eyes, score }) => {
        // Matched on blocks of k x k pixels, k whole, so that the face spans at most `pixels` blocks.
        const k = Math.max(1, Math.ceil(Math.max(box[2] - box[0], box[3] - box[1]) / pixels));
        const origin = [roundEven(box[0]), roundEven(box[1])];
        const pw = Math.floor((roundEven(box[2]) - origin[0]) / k);
        const ph = Math.floor((roundEven(box[3]) - origin[1]) / k);
        const pattern = pw > 0 && ph > 0 ? unit(blockGrey(frame, origin[0], origin[1], pw, ph, k)) : null;
        return { box, eyes, score, k, origin, pw, ph, pattern, shift: [0, 0], carried: false,
          look: faceTemplate(frame, box, template) };
      }).concat(carried.map((face) => ({ ...face, carried: true })));
      return this.following.map(({ box, eyes, score }) => ({ box, eyes, score }));
    }

    // FaceFollower._follow: every face moved to this frame; null when any cannot be followed.
    follow(frame) {
      const moved = [];
      for (const face of this.following) {
        const next = this.move(frame, face);
        if (!next) return null;
        moved.push(next);
      }
      this.following = moved;
      return moved.map(({ box, eyes, score }) => ({ box, eyes, score }));
    }

    move(frame, face) {
      const { k, pw, ph, pattern, origin, shift } = face;
      if (!pattern || pw < 2 || ph < 2) return null;
      const reach = Math.max(1, Math.ceil(this.settings.reach * Math.max(pw, ph))) * k;
      const x = Math.round(origin[0] + shift[0]), y = Math.round(origin[1] + shift[1]);
      const x0 = Math.max(0, x - reach), y0 = Math.max(0, y - reach);
      const rw = Math.floor((Math.min(frame.width, x + pw * k + reach) - x0) / k);
      const rh = Math.floor((Math.min(frame.height, y + ph * k + reach) - y0) / k);
      if (rw < pw + 2 || rh < ph + 2) return null;
      const found = bestMatch(blockGrey(frame, x0, y0, rw, rh, k), rw, rh, pattern, pw, ph);
      if (found.edge) return null;
      const delta = [x0 + found.x * k - origin[0], y0 + found.y * k - origin[1]];
      const box = face.box.map((v, i) => v + delta[i % 2]);
      if (box[0] < 0 || box[1] < 0 || box[2] > frame.width || box[3] > frame.height) return null;
      const looks = faceTemplate(frame, box, this.settings.template);
      if (looks.reduce((sum, v, i) => sum + v * face.look[i], 0) < this.settings.min_similarity) return null;
      return { ...face, box, eyes: face.eyes.map(([ex, ey]) => [ex + delta[0], ey + delta[1]]),
        origin: [origin[0] + delta[0], origin[1] + delta[1]], shift: delta };
    }
  }

  // calibration.LiveCalibration with its NeutralCapture and Baseline: the Calibrate control, kept in this page.
  class Calibration {
    constructor(settings) { this.settings = settings; this.reset(); }
    reset() { this.capture = null; this.error = null; this.person = null; }
    start(seconds) { this.capture = { seconds, start: null, elapsed: 0, rows: [], trackId: null }; this.error = null; }
    logs(p) { return p.map((v) => Math.log(clamp(v, this.settings.floor, 1))); }
    // calibration.apply_baseline: softmax(log p - strength * (baseline - reference)).
    apply(probs, neutral) {
      const { strength, neutral_margin: margin } = this.settings;
      const reference = (i) => (i === neutral ? margin : 0);
      const logits = this.logs(probs).map((v, i) => v - strength * (this.person.logProbs[i] - reference(i)));
      const top = Math.max(...logits), exp = logits.map((v) => Math.exp(v - top)), sum = exp.reduce((a, b) => a + b, 0);
      return exp.map((v) => v / sum);
    }
    // NeutralCapture.add: the largest face of the first frame that shows one, then its track's frames.
    observe(timeS, faces) {
      const capture = this.capture;
      if (!capture) return;
      capture.start ??= timeS;
      capture.elapsed = timeS - capture.start;
      if (faces.length) {
        const following = capture.rows.length && capture.trackId !== null;
        const face = following ? faces.find((f) => f.track_id === capture.trackId) : faces[0];
        if (face) {
          if (!capture.rows.length || capture.trackId === null) capture.trackId = face.track_id;
          capture.rows.push(face.raw);
        }
      }
      if (capture.elapsed < capture.seconds) return;
      this.capture = null;
      if (capture.rows.length < this.settings.min_faces) {
        this.error = `saw a face in ${capture.rows.length} frame(s) of ${capture.seconds} s, ` +
          `need ${this.settings.min_faces}: look at the camera, with your face lit, and try again`;
        return;
      }
      const sums = capture.rows.map((p) => this.logs(p)).reduce((a, b) => a.map((v, i) => v + b[i]));
      const samples = capture.rows.length;
      this.person = { trackId: capture.trackId, samples, logProbs: sums.map((v) => v / samples) };
    }
    state() {
      if (this.capture) {
        const { elapsed, seconds } = this.capture;
        return { state: "capturing", progress: clamp(elapsed / seconds, 0, 1), seconds };
      }
      const person = this.person;
      const state = person ? { state: "on", samples: person.samples, track_id: person.trackId } : { state: "off" };
      return this.error ? { ...state, error: this.error } : state;
    }
  }

  let runtime = null;
  function loadRuntime(base) {
    runtime ??= new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement("script"), { src: `${base}ort/ort.wasm.min.js` });
      script.onload = () => resolve(window.ort);
      script.onerror = () => reject(new Error(`cannot load ${script.src}`));
      document.head.append(script);
    });
    return runtime;
  }

  async function load(base) {
    base = new URL(base, location.href).href;
    if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
    const response = await fetch(`${base}pipeline.json`);
    if (!response.ok) throw new Error(`${base}pipeline.json: HTTP ${response.status}`);
    const config = await response.json();
    const ort = await loadRuntime(base);
    ort.env.wasm.wasmPaths = `${base}ort/`;
    // Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages.
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const open = (file) => ort.InferenceSession.create(`${base}${file}`, options);
    const sessions = {};
    for (const file of new Set([config.model.file, config.detector.full.model, config.detector.short.model])) {
      sessions[file] = await open(file); // one at a time: the WebAssembly runtime initialises once
    }
    const blazeface = (spec) => new BlazeFace(sessions[spec.model], spec, config.detector);
    const detectors = {
      full: blazeface(config.detector.full),
      short: blazeface(config.detector.short),
      looks: config.detector.check.looks.map(blazeface),
    };
    return new Engine(config, detectors, sessions[config.model.file], ort.env.wasm.numThreads);
  }

  class Engine {
    constructor(config, detectors, classifier, threads) {
      Object.assign(this, { config, detectors, classifier, threads });
      this.emotions = config.emotions;
      this.tracker = new Tracker(config.tracker);
      this.follower = new Follower(config.follow);
      this.calibration = new Calibration(config.calibration);
    }

    reset() { this.tracker.reset(); this.follower.reset(); this.calibration.reset(); }

    // The live socket's text commands (emorec.web.live._command), run here.
    command(text) {
      const { calibrate } = JSON.parse(text);
      if (calibrate === "reset") this.calibration.reset();
      else this.calibration.start(calibrate.seconds);
    }

    // EmotionRecognizer.process on one frame (an ImageData or {width, height, data} RGBA): detect, crop,
    // classify, then, unless `still`, track, smooth and calibrate as a stream does. A stream's frames are
    // detected every detect_every-th frame and followed in between (Follower); a still is always detected.
    async analyse(frame, { still = false } = {}) {
      const timings = {}, start = performance.now();
      let mark = start;
      const lap = (name) => { const now = performance.now(); timings[name] = now - mark; mark = now; };
      let rgba = { width: frame.width, height: frame.height, channels: 4, data: frame.data };
      const longest = this.config.detector.max_side, long = Math.max(rgba.width, rgba.height);
      if (long > longest) {
        rgba = shrink(rgba, roundEven(rgba.width * longest / long), roundEven(rgba.height * longest / long));
      }
      const detect = async (f) => this.filter(await detectFaces(this.detectors, f, this.config.detector), f);
      let found;
      if (still) {
        found = await detect(rgba);
        lap("detect");
      } else {
        const followed = await this.follower.faces(rgba, detect);
        found = this.filter(followed.found, rgba); // faces carried over a detection still obey max_faces
        Object.assign(timings, followed.spent);
        mark = performance.now();
      }
      const size = this.config.crop.face_size, batch = new Float32Array(found.length * size * size);
      found.forEach((d, i) => batch.set(cropFace(rgba, d.box, d.eyes, this.config.crop).data, i * size * size));
      lap("crop");
      let probs = [];
      if (found.length) {
        const input = new ort.Tensor("float32", batch, [found.length, 1, size, size]);
        const outputs = await this.classifier.run({ [this.classifier.inputNames[0]]: input });
        const output = outputs[this.classifier.outputNames[0]].data;
        probs = found.map((_, i) => Array.from(output.subarray(i * 7, i * 7 + 7)));
      }
      lap("classify");
      let tracks = found.map((_, i) => ({ id: null, probs: probs[i] }));
      if (!still) { tracks = this.tracker.update(found.map((d) => d.box), probs); lap("track"); }
      const neutral = this.emotions.indexOf("neutral"), calibration = this.calibration;
      let faces = found.map((d, i) => {
        const raw = tracks[i].probs, person = !still && calibration.person;
        const scores = person && person.trackId === tracks[i].id ? calibration.apply(raw, neutral) : raw;
        const calibrated = person && scores !== raw;
        return { box: d.box, scores, raw: calibrated ? raw : null, score: d.score, track_id: tracks[i].id };
      });
      if (!still) calibration.observe(performance.now() / 1000, faces.map((f) => ({ ...f, raw: f.raw ?? f.scores })));
      faces = faces.map((f) => this.toDict(f));
      timings.total = performance.now() - start;
      const answer = { width: rgba.width, height: rgba.height, faces, timings_ms: timings };
      return still ? answer : { ...answer, calibration: calibration.state() };
    }

    // EmotionRecognizer._filter: boxes rounded into the frame, the small dropped, the largest first.
    filter(found, frame) {
      const limits = [frame.width, frame.height, frame.width, frame.height];
      const faces = found.map((d) => ({ ...d, box: d.box.map((v, i) => clamp(roundEven(v), 0, limits[i])) }))
        .map((d) => ({ ...d, size: Math.min(d.box[2] - d.box[0], d.box[3] - d.box[1]) }))
        .filter((d) => d.size >= Math.max(this.config.min_face_size, 1))
        .sort((a, b) => b.size - a.size);
      return this.config.max_faces == null ? faces : faces.slice(0, this.config.max_faces);
    }

    // types.Face.to_dict
    toDict(face) {
      const named = (p) => Object.fromEntries(this.emotions.map((name, i) => [name, Math.round(p[i] * 1e4) / 1e4]));
      const best = (p) => p.indexOf(Math.max(...p));
      const data = {
        box: face.box,
        emotion: this.emotions[best(face.scores)],
        confidence: Math.round(Math.max(...face.scores) * 1e4) / 1e4,
        scores: named(face.scores),
        detection_score: Math.round(face.score * 1e4) / 1e4,
        track_id: face.track_id,
      };
      if (!face.raw) return data;
      return { ...data, calibrated: true, raw_emotion: this.emotions[best(face.raw)], raw_scores: named(face.raw) };
    }
  }

  return { load };
})();
