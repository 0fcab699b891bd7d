// A renderer for regl-scatterplot that draws straight into the map's own canvas, and keeps
// the last drawing as an image to move while the camera moves.
//
// regl-scatterplot's default renderer (createRenderer) draws every frame into a float32
// framebuffer of a shared, window-sized WebGL canvas, then into that canvas, then copies the
// canvas into the map's canvas with a 2-D drawImage: a GPU -> CPU read-back each frame. With a
// GPU that is cheap; in software WebGL (SwiftShader: no GPU, headless Chromium) the read-back
// and the window-sized float framebuffer cost most of the frame. Here the map's canvas owns the
// WebGL context: no float framebuffer, no gamma pass, no copy. The renderer interface (regl,
// canvas, render, onFrame, resize, refresh, destroy, isSupported, gamma) is the one
// regl-scatterplot's `renderer` option takes.
//
// Drawing every point is still the cost of a frame (in software WebGL about 2 microseconds a
// point: 60,000 points ~ 100 ms). So with `getView` the points are also drawn into an offscreen
// image covering `margin` times the view in each direction, and while the camera moves (pan,
// zoom) each frame shows that image moved and scaled to the camera (one textured quad) instead
// of drawing the points again. With the camera still (first paint, colours, filter, hover,
// selection, lasso) and `settleMs` after it stops, the points are drawn on the canvas itself,
// so a resting map is always an exact drawing of its points. The image is drawn again from the
// points when a gesture starts and it misses a change, when the view leaves it, when it would
// be magnified more than `maxZoomIn` times, and offscreen after `idleMs` without drawing.

import createREGL from "regl";
import { cachePlacement } from "./map-math.js";

// the extensions regl-scatterplot needs (its GL_EXTENSIONS)
const EXTENSIONS = ["OES_texture_float", "OES_element_index_uint", "WEBGL_color_buffer_float", "EXT_float_blend"];
const CLEAR = { color: [0, 0, 0, 0], depth: 1 };

function sameView(a, b) {
  if (!a || !b) return false;
  for (let i = 0; i < 16; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * @param {HTMLCanvasElement} canvas  the map's canvas (pass the same canvas to createScatterplot)
 * @param {object} options
 * @param {boolean} [options.antialias]  multisampling (off by default: the points' own shader
 *   smooths their edges; MSAA multiplies the work of software WebGL)
 * @param {() => ArrayLike<number>} [options.getView]  the camera's view matrix; with it, the
 *   moving camera is drawn from the cached image (above); without it, every frame draws the points
 * @param {number} [options.margin]  the cached image covers this many views in each direction
 * @param {number} [options.settleMs]  the camera at rest this long: draw the points again
 * @param {number} [options.idleMs]  nothing drawn this long: bring a stale image up to date
 * @param {number} [options.maxZoomIn]  magnify the cached image at most this much
 * @returns the renderer, or null when the browser has no WebGL
 */
export function createDirectRenderer(canvas, { antialias = false, getView = null, margin = 2, settleMs = 120, idleMs = 600, maxZoomIn = 2.5 } = {}) {
  const gl = canvas.getContext("webgl", { antialias, alpha: true, premultipliedAlpha: true, depth: false, stencil: false, preserveDrawingBuffer: false });
  if (!gl) return null;
  const extensions = EXTENSIONS.filter((name) => gl.getExtension(name));
  const regl = createREGL({ gl, extensions });
  const drawFns = new Set();
  let destroyed = false;
  let gamma = 1;
  // the cache: an RGBA8 framebuffer `margin` x the canvas, premultiplied colours
  const maxSize = Math.min(4096, regl.limits.maxTextureSize, regl.limits.maxRenderbufferSize);
  let fbo = null;
  let fboMargin = margin;
  let cacheView = null; // the view the cache was drawn at (null: no valid cache)
  let lastView = null; // the view of the last frame shown
  let lastDraw = null; // the scatterplot's draw function of the last render
  let lastMotion = 0;
  let settled = true;
  let cacheStale = true; // the image misses a change drawn since (or was never drawn)
  let lastStill = 0; // when the map was last drawn with the camera still
  let passScale = 1; // 1 / margin while drawing the cache (see `canvas` below)
  // exact: drawings from the points (on the canvas or into the image); composited: frames
  // shown from the image; settles: exact drawings after the camera stopped; imageReady: the
  // image is up to date (the next gesture moves at once)
  const stats = { exact: 0, composited: 0, settles: 0, imageReady: false };

  const composite = regl({
    vert: `precision highp float;
      attribute vec2 corner;
      uniform vec2 c00, c10, c01;
      varying vec2 uv;
      void main() {
        uv = corner;
        gl_Position = vec4(c00 + corner.x * (c10 - c00) + corner.y * (c01 - c00), 0.0, 1.0);
      }`,
    frag: `precision mediump float;
      uniform sampler2D image;
      varying vec2 uv;
      void main() { gl_FragColor = texture2D(image, uv); }`,
    attributes: { corner: [0, 0, 1, 0, 0, 1, 1, 1] },
    uniforms: {
      image: () => fbo,
      c00: (_ctx, p) => p.corners[0],
      c10: (_ctx, p) => p.corners[1],
      c01: (_ctx, p) => p.corners[2],
    },
    primitive: "triangle strip",
    count: 4,
    depth: { enable: false },
    blend: { enable: false },
  });

  function drawExact(draw) {
    regl.clear(CLEAR);
    draw();
    stats.exact += 1;
  }

  /** Draw the points into the cache at the current view; false if there is no cache. */
  function drawCache(draw, view) {
    const w = canvas.width;
    const hgt = canvas.height;
    if (!w || !hgt) return false;
    fboMargin = Math.max(1, Math.min(margin, maxSize / w, maxSize / hgt));
    const fw = Math.round(w * fboMargin);
    const fh = Math.round(hgt * fboMargin);
    // linear filtering: the moving image is smooth when scaled, and exact at 1:1 (texel centres)
    if (!fbo) fbo = regl.framebuffer({ color: regl.texture({ width: fw, height: fh, type: "uint8", min: "linear", mag: "linear" }), depthStencil: false });
    else if (fbo.width !== fw || fbo.height !== fh) fbo.resize(fw, fh);
    // the scatterplot scales its projection by canvas.width / renderer.canvas.width: while the
    // cache is drawn, `canvas` reports the cache's size, so the points cover margin x the view
    passScale = 1 / fboMargin;
    try {
      fbo.use(() => {
        regl.clear(CLEAR);
        draw();
      });
    } finally {
      passScale = 1;
    }
    cacheView = Float32Array.from(view);
    stats.exact += 1;
    return true;
  }

  function show(view) {
    const aspect = canvas.width / canvas.height;
    const { corners } = cachePlacement(cacheView, view, aspect, fboMargin, Infinity);
    regl.clear(CLEAR);
    composite({ corners });
    stats.composited += 1;
  }

  const loop = regl.frame(() => {
    for (const fn of drawFns) fn();
    if (!lastDraw || !getView) return;
    const now = performance.now();
    if (!settled && now - lastMotion >= settleMs) {
      // the camera has rested for settleMs: the points again, exactly, at this view
      settled = true;
      cacheStale = true;
      stats.imageReady = false;
      drawExact(lastDraw);
      lastStill = performance.now();
      stats.settles += 1;
    } else if (settled && cacheStale && now - lastStill >= idleMs) {
      // nothing drawn for idleMs: bring the image up to date offscreen (the canvas keeps its
      // exact drawing), so the next gesture starts moving at once
      const view = getView();
      if (view && drawCache(lastDraw, view)) cacheStale = false;
      stats.imageReady = !cacheStale;
      lastStill = performance.now();
    }
  });

  const proxy = {
    get width() {
      return canvas.width / passScale;
    },
    get height() {
      return canvas.height / passScale;
    },
  };

  return {
    get canvas() {
      return passScale === 1 ? canvas : proxy;
    },
    get regl() {
      return regl;
    },
    get gamma() {
      return gamma;
    },
    set gamma(value) {
      gamma = Number(value) || 1; // kept for the interface; there is no gamma pass here
    },
    get isSupported() {
      return extensions.length === EXTENSIONS.length;
    },
    get isDestroyed() {
      return destroyed;
    },
    stats,
    /** One frame (called by the scatterplot with its draw function). */
    render(draw) {
      lastDraw = draw;
      const view = getView ? getView() : null;
      if (!view) {
        drawExact(draw);
        return;
      }
      const moving = lastView !== null && !sameView(view, lastView);
      lastView = Float32Array.from(view);
      if (!moving) {
        // the camera is still: something else changed (data, colours, hover, selection,
        // lasso): draw the points on the canvas; the image is brought up to date when idle
        drawExact(draw);
        cacheStale = true;
        stats.imageReady = false;
        lastStill = performance.now(); // (after the drawing, as lastMotion)
        return;
      }
      settled = false;
      const aspect = canvas.width / canvas.height;
      const fits = !cacheStale && cacheView && fbo && fbo.width === Math.round(canvas.width * fboMargin) && cachePlacement(cacheView, view, aspect, fboMargin, maxZoomIn).covers;
      if (!fits) {
        if (!drawCache(draw, view)) {
          drawExact(draw);
          return;
        }
        cacheStale = false;
        stats.imageReady = true;
      }
      show(view);
      // measured from the end of the frame: a slow frame (a large map's image drawn again)
      // is not a rest
      lastMotion = performance.now();
    },
    /** Only used by the scatterplot's image export: the canvas is the scatterplot's own. */
    resize(width, height) {
      if (width && height) {
        canvas.width = Math.round(width * window.devicePixelRatio);
        canvas.height = Math.round(height * window.devicePixelRatio);
      }
    },
    refresh() {
      regl.poll();
    },
    onFrame(fn) {
      drawFns.add(fn);
      return () => drawFns.delete(fn);
    },
    destroy() {
      destroyed = true;
      loop.cancel();
      drawFns.clear();
      fbo?.destroy();
      regl.destroy();
    },
  };
}
