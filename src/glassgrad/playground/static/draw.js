// Canvas drawing for the playground: heat maps from the server's bytes (0..255, 128 = the
// centre value), the data points and the loss curves. Plain Canvas 2D, no library.

let LUT = null; // 256 RGB triples: orange (low) through white to blue (high)
const NEG = [232, 131, 58], MID = [248, 248, 248], POS = [47, 127, 193];

export function lut() {
  if (LUT) return LUT;
  LUT = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i - 127.5) / 127.5;
    const end = t < 0 ? NEG : POS, f = Math.abs(t);
    for (let k = 0; k < 3; k++) LUT[i * 3 + k] = MID[k] + (end[k] - MID[k]) * f;
  }
  return LUT;
}

// discrete: each byte becomes its side of the centre (128), the class the output predicts
function image(pic, n, discrete = false) {
  let bytes = Uint8Array.from(atob(pic.q), (c) => c.charCodeAt(0));
  if (discrete) bytes = bytes.map((b) => (b >= 128 ? 255 : 0));
  const img = new ImageData(n, n);
  const table = lut();
  for (let i = 0; i < bytes.length; i++) {
    const q = bytes[i] * 3;
    img.data[i * 4] = table[q];
    img.data[i * 4 + 1] = table[q + 1];
    img.data[i * 4 + 2] = table[q + 2];
    img.data[i * 4 + 3] = 255;
  }
  return img;
}

export function paintPicture(canvas, pic, n, discrete = false) {
  if (canvas.width !== n) canvas.width = canvas.height = n;
  canvas.getContext("2d").putImageData(image(pic, n, discrete), 0, 0);
}

const scratch = document.createElement("canvas");

export function drawHeat(canvas, pic, n, discrete = false) {
  paintPicture(scratch, pic, n, discrete);
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = true;
  g.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

export function drawPoints(canvas, data, showTest, problem) {
  const g = canvas.getContext("2d");
  const [x0, x1, y0, y1] = data.domain;
  const sx = (x) => ((x - x0) / (x1 - x0)) * canvas.width;
  const sy = (y) => ((y1 - y) / (y1 - y0)) * canvas.height;
  const ys = [...data.train.y, ...data.test.y];
  const ymax = Math.max(1e-9, ...ys.map(Math.abs));
  const table = lut();
  const colour = (y) => {
    const q = problem === "classification" ? (y > 0.5 ? 255 : 0)
      : Math.round(Math.max(0, Math.min(255, (y / ymax) * 127.5 + 127.5)));
    return `rgb(${table[q * 3]},${table[q * 3 + 1]},${table[q * 3 + 2]})`;
  };
  const parts = showTest ? [[data.train, "#fff"], [data.test, "#000"]] : [[data.train, "#fff"]];
  for (const [part, stroke] of parts) {
    part.x.forEach(([x, y], i) => {
      g.beginPath();
      g.arc(sx(x), sy(y), part.x.length > 50 ? 3 : 6, 0, 2 * Math.PI);
      g.fillStyle = colour(part.y[i]);
      g.strokeStyle = stroke;
      g.lineWidth = 1;
      g.fill();
      g.stroke();
    });
  }
}

export function drawCurve(canvas, history) {
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  const n = history.step.length;
  if (n < 2) return;
  const all = [...history.train, ...history.test].filter(Number.isFinite);
  const max = Math.max(1e-12, ...all);
  const last = history.step[n - 1] || 1;
  for (const [key, colour] of [["train", "#8a96a3"], ["test", "#1d2733"]]) {
    g.beginPath();
    history[key].forEach((v, i) => {
      const x = (history.step[i] / last) * (w - 4) + 2;
      const y = h - 2 - (Math.min(v, max) / max) * (h - 4);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.strokeStyle = colour;
    g.lineWidth = 1.5;
    g.stroke();
  }
}
