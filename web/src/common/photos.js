// Photos on the phone pages: a picker that opens the camera (or the gallery) and previews what was chosen,
// and a strip of stored photos (thumbnails of /media/<id>, the full photo on a tap).
import { h } from "../workbench/dom.js";

// <input type=file accept=image/* capture>: on a phone the camera opens; several photos may be chosen.
export function photoPicker({ name = "photos", label = "拍照 / 选择照片", max = 9 } = {}) {
  let files = [];
  const previews = h("div", { class: "previews" });
  const input = h("input", {
    type: "file", accept: "image/*", capture: "environment", multiple: true, name, "data-role": name,
    onchange: () => {
      files = [...files, ...input.files].slice(0, max);
      input.value = "";
      draw();
    },
  });
  function draw() {
    previews.replaceChildren(...files.map((f, i) => {
      const url = URL.createObjectURL(f);
      return h("figure", { class: "preview" }, h("img", { src: url, alt: "待上传照片", onload: () => URL.revokeObjectURL(url) }),
        h("button", { type: "button", class: "remove", title: "删除", onclick: () => { files.splice(i, 1); draw(); } }, "×"));
    }));
  }
  const element = h("div", { class: "picker" }, h("label", { class: "file-button" }, label, input), previews);
  return { element, files: () => [...files], clear: () => { files = []; draw(); } };
}

// Stored photos: relative /media/<id> get their thumbnail; other (absolute) URLs are shown as they are.
export function photoStrip(urls, empty = "无照片") {
  if (!urls || !urls.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "photos" }, urls.map((u) => {
    const thumb = /^\/media\/[0-9a-f]+$/.test(u) ? `${u}/thumbnail` : u;
    return h("a", { href: u, target: "_blank", rel: "noopener" },
      h("img", { src: thumb, alt: "现场照片", loading: "lazy", onerror: (e) => { e.target.replaceWith(h("span", { class: "photo-link" }, "照片")); } }));
  }));
}
