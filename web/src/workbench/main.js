// Placeholder: the workbench page is being built (issue 9).
import { api } from "../common/api.js";
document.getElementById("app").textContent = typeof api === "function" ? "网格 wangge" : "";
