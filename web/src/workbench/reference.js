// The street's reference data the forms need (categories, owners, unit grids), fetched once per sign-in.
import { api } from "../common/api.js";

let cache = {};

export function forget() {
  cache = {};
}

export function categories() {
  cache.categories ||= api("/api/v1/categories").catch((e) => { delete cache.categories; throw e; });
  return cache.categories;
}

export function owners() {
  cache.owners ||= api("/api/v1/owners").catch((e) => { delete cache.owners; throw e; });
  return cache.owners;
}

// The unit grids' polygons (GeoJSON features, level "unit") from routing's GET /api/v1/grids; null when
// routing does not serve them (the locate form then offers the grid code and a point by hand).
export function unitGrids() {
  cache.grids ||= api("/api/v1/grids", { query: { level: "unit" } })
    .then((geo) => {
      const features = (geo && (geo.features || (geo.geojson && geo.geojson.features))) || [];
      const units = features.filter((f) => !f.properties || !f.properties.level || f.properties.level === "unit");
      return units.length ? { type: "FeatureCollection", features: units } : null;
    })
    .catch(() => null);
  return cache.grids;
}

export async function categoryName(code) {
  if (!code) return "—";
  const found = (await categories()).find((c) => c.code === code);
  return found ? `${found.name}（${code}）` : code;
}

export async function ownerName(code) {
  if (!code) return "—";
  const found = (await owners()).find((o) => o.code === code);
  return found ? found.name : code;
}
