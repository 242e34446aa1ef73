"""Sample NWS and Open-Meteo APIs for offline mode, in the real APIs' shapes and error behaviour.

Routes (below the sample upstream's own route, ``/sample-upstream`` on Serve):
``/nws/points/{lat},{lon}``, ``/nws/gridpoints/{office}/{x},{y}/forecast``, ``/nws/alerts/active``,
``/open-meteo/v1/forecast``, ``/geocoding/v1/search``, ``/air-quality/v1/air-quality``.

Seattle's NWS point and forecast are recorded responses (data/weather/); other US points get a templated
forecast, points outside the US a 404 like the real NWS, and Open-Meteo answers any coordinates with
deterministic synthetic values. Text fields start with "[SAMPLE DATA]" and every response carries the
``X-Data-Notice`` header, so answers built from them can say they are not real weather.
"""

import copy
import json
import math
import random
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from mcp_servers.http_upstream import DATA_NOTICE_HEADER
from mcp_servers.weather import (
    SAMPLE_AIR_QUALITY_PATH,
    SAMPLE_FORECAST_PATH,
    SAMPLE_GEOCODING_PATH,
    SAMPLE_NWS_PATH,
)
from mcp_servers.weather_data import US_STATES

DATA_DIR = Path(__file__).parent / "data" / "weather"
NWS_PUBLIC = "https://api.weather.gov"
NOTICE = "SAMPLE DATA from the bundled offline sample upstream server; not a real forecast or observation."
SAMPLE_GRID = "SMP"  # office id of templated grid cells (0.1 degree cells, coordinates encoded in x, y)
NEAR_DEGREES = 0.15  # a point this close to a gazetteer city uses the city's grid cell
# Rough NWS coverage boxes (lat_min, lat_max, lon_min, lon_max): CONUS, Alaska, Hawaii, PR/VI, Guam.
NWS_COVERAGE = (
    (24.4, 49.5, -125.0, -66.9),
    (51.0, 71.6, -180.0, -129.9),
    (18.8, 22.4, -160.4, -154.7),
    (17.6, 18.6, -67.4, -64.5),
    (13.2, 13.7, 144.6, 145.0),
)

_Weather = dict[str, float | int]  # one day's synthetic values: high, low, code, wind, ... (_day_weather)

router = APIRouter(tags=["sample weather"])


# -- data files and responses ----------------------------------------------------------------------


@cache
def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def _places() -> list[dict[str, Any]]:
    places: list[dict[str, Any]] = _load("gazetteer.json")["places"]
    return places


def _respond(payload: Any, status: int = 200, media_type: str = "application/json") -> JSONResponse:
    return JSONResponse(
        payload, status_code=status, media_type=media_type, headers={DATA_NOTICE_HEADER: NOTICE}
    )


def _nws_problem(status: int, title: str, detail: str, kind: str) -> JSONResponse:
    """NWS errors are RFC 7807 problem documents."""
    problem = {
        "correlationId": "sample-0000",
        "title": title,
        "type": f"{NWS_PUBLIC}/problems/{kind}",
        "status": status,
        "detail": detail,
        "instance": f"{NWS_PUBLIC}/requests/sample-0000",
    }
    return _respond(problem, status, "application/problem+json")


def _open_meteo_error(reason: str) -> JSONResponse:
    return _respond({"error": True, "reason": reason}, 400)


# -- geography and synthetic climate -------------------------------------------------------------


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def _nearest_place(lat: float, lon: float, *, us_only: bool = False) -> dict[str, Any] | None:
    candidates = [p for p in _places() if not us_only or "nws" in p]
    close = [
        p
        for p in candidates
        if abs(p["latitude"] - lat) <= NEAR_DEGREES and abs(p["longitude"] - lon) <= NEAR_DEGREES
    ]
    return min(close, key=lambda p: _distance_km(lat, lon, p["latitude"], p["longitude"]), default=None)


def _fmt(value: float) -> str:
    """A coordinate as NWS writes it: at most 4 decimals, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _in_nws_coverage(lat: float, lon: float) -> bool:
    return any(a <= lat <= b and c <= lon <= d for a, b, c, d in NWS_COVERAGE)


def _zone(lat: float, lon: float) -> tuple[str, tzinfo]:
    """The place's time zone when near a gazetteer city, else UTC (like Open-Meteo without a match)."""
    place = _nearest_place(lat, lon)
    if place:
        try:
            return place["timezone"], ZoneInfo(place["timezone"])
        except ZoneInfoNotFoundError:
            pass
    return "GMT", UTC


def _rng(lat: float, lon: float, day: date, salt: str = "") -> random.Random:
    return random.Random(f"{lat:.1f}:{lon:.1f}:{day.isoformat()}:{salt}")


def _day_weather(lat: float, lon: float, day: date) -> _Weather:
    """Plausible, deterministic daily weather: temperature from latitude and season, random sky."""
    rng = _rng(lat, lon, day)
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365.25)  # +1 late July, -1 January
    if lat < 0:
        season = -season
    mean = 27.0 - 0.4 * abs(lat) + (0.22 * abs(lat)) * season + rng.uniform(-3, 3)
    spread = rng.uniform(6, 11)
    code = rng.choices([0, 1, 2, 3, 45, 61, 63, 80, 95], weights=[14, 14, 16, 14, 4, 10, 6, 8, 2])[0]
    if mean < 1 and code in (61, 63, 80):
        code = {61: 71, 63: 73, 80: 85}[code]
    wet = code >= 51
    return {
        "code": code,
        "high": round(mean + spread / 2, 1),
        "low": round(mean - spread / 2, 1),
        "precipitation": round(rng.uniform(0.5, 14), 1) if wet else 0.0,
        "chance": rng.randrange(50, 95, 5) if wet else rng.randrange(0, 25, 5),
        "wind": round(rng.uniform(4, 32), 1),
        "humidity": rng.randrange(35, 95),
    }


# -- NWS -----------------------------------------------------------------------------------------

_POINT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")
_SKY_WORDS = {
    0: ("Sunny", "Clear"),
    1: ("Mostly Sunny", "Mostly Clear"),
    2: ("Partly Sunny", "Partly Cloudy"),
    3: ("Cloudy", "Cloudy"),
    45: ("Patchy Fog", "Patchy Fog"),
    61: ("Chance Rain", "Chance Rain"),
    63: ("Rain", "Rain"),
    71: ("Chance Snow", "Chance Snow"),
    73: ("Snow", "Snow"),
    80: ("Rain Showers Likely", "Chance Rain Showers"),
    85: ("Snow Showers Likely", "Chance Snow Showers"),
    95: ("Chance Showers And Thunderstorms", "Chance Showers And Thunderstorms"),
}
_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def _grid_for(lat: float, lon: float) -> tuple[str, int, int, dict[str, Any] | None]:
    place = _nearest_place(lat, lon, us_only=True)
    if place:
        nws = place["nws"]
        return nws["office"], nws["gridX"], nws["gridY"], place
    return SAMPLE_GRID, round((lon + 180) * 10), round((lat + 90) * 10), None


def _grid_location(office: str, x: int, y: int) -> tuple[float, float, dict[str, Any] | None] | None:
    if office == SAMPLE_GRID:
        return y / 10 - 90, x / 10 - 180, None
    for place in _places():
        nws = place.get("nws")
        if nws and (nws["office"], nws["gridX"], nws["gridY"]) == (office, x, y):
            return place["latitude"], place["longitude"], place
    return None


def _points_document(lat: float, lon: float) -> dict[str, Any]:
    office, x, y, place = _grid_for(lat, lon)
    if place and place["name"] == "Seattle":
        document: dict[str, Any] = copy.deepcopy(_load("nws_points_seattle.json"))
    else:
        grid = f"{NWS_PUBLIC}/gridpoints/{office}/{x},{y}"
        city = place["name"] if place else f"Sample point {_fmt(lat)},{_fmt(lon)}"
        state = next((c for c, n in US_STATES.items() if place and n == place["admin1"]), None)
        document = {
            "type": "Feature",
            "properties": {
                "@type": "wx:Point",
                "cwa": office,
                "forecastOffice": f"{NWS_PUBLIC}/offices/{office}",
                "gridId": office,
                "gridX": x,
                "gridY": y,
                "forecast": f"{grid}/forecast",
                "forecastHourly": f"{grid}/forecast/hourly",
                "forecastGridData": grid,
                "relativeLocation": {"type": "Feature", "properties": {"city": city, "state": state or ""}},
                "timeZone": place["timezone"] if place else "UTC",
            },
        }
    point = f"{_fmt(lat)},{_fmt(lon)}"
    document["id"] = document["properties"]["@id"] = f"{NWS_PUBLIC}/points/{point}"
    document["geometry"] = {"type": "Point", "coordinates": [lon, lat]}
    return document


def _templated_forecast(lat: float, lon: float, place: dict[str, Any] | None) -> dict[str, Any]:
    now = datetime.now(UTC)
    offset = timezone(timedelta(hours=round(lon / 15)))
    local = now.astimezone(offset)
    daytime = 6 <= local.hour < 18
    start = local.replace(minute=0, second=0, microsecond=0)
    periods = []
    for number in range(1, 15):
        if daytime:
            end, day = start.replace(hour=18), start.date()
        elif start.hour >= 18:
            end, day = (start + timedelta(days=1)).replace(hour=6), start.date()
        else:  # after midnight: the rest of the previous evening's night
            end, day = start.replace(hour=6), start.date() - timedelta(days=1)
        weather = _day_weather(lat, lon, day)
        if number == 1:
            name = "Today" if daytime else "Tonight"
        else:
            name = day.strftime("%A") + ("" if daytime else " Night")
        temp_c = weather["high"] if daytime else weather["low"]
        temp_f = round(temp_c * 9 / 5 + 32)
        short = _SKY_WORDS[int(weather["code"])][0 if daytime else 1]
        rng = _rng(lat, lon, day, "night" if not daytime else "day")
        mph = round(float(weather["wind"]) / 1.609)
        wind = f"{max(mph - 5, 0)} to {mph} mph" if mph > 5 else f"{mph} mph"
        direction = rng.choice(_COMPASS)
        chance = int(weather["chance"]) or None
        detail = f"{short}, with a {'high' if daytime else 'low'} near {temp_f}. {direction} wind {wind}."
        if chance:
            detail += f" Chance of precipitation is {chance}%."
        periods.append(
            {
                "number": number,
                "name": name,
                "startTime": start.isoformat(),
                "endTime": end.isoformat(),
                "isDaytime": daytime,
                "temperature": temp_f,
                "temperatureUnit": "F",
                "temperatureTrend": None,
                "probabilityOfPrecipitation": {"unitCode": "wmoUnit:percent", "value": chance},
                "windSpeed": wind,
                "windDirection": direction,
                "shortForecast": short,
                "detailedForecast": f"[SAMPLE DATA] {detail}",
            }
        )
        start, daytime = end, not daytime
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "units": "us",
            "forecastGenerator": "BaselineForecastGenerator",
            "generatedAt": now.isoformat(timespec="seconds"),
            "updateTime": now.replace(minute=0, second=0, microsecond=0).isoformat(),
            "elevation": {"unitCode": "wmoUnit:m", "value": place["elevation"] if place else 0.0},
            "periods": periods,
        },
    }


@router.get(SAMPLE_NWS_PATH + "/points/{point}")
async def nws_points(point: str, request: Request) -> Response:
    """NWS ``/points/{lat},{lon}``: the point's grid cell, with api.weather.gov's errors and redirect."""
    match = _POINT.match(point)
    if not match:
        return _nws_problem(
            400, "Invalid Parameter", f'Parameter "point" is invalid: {point}', "InvalidParameter"
        )
    lat, lon = float(match[1]), float(match[2])
    if any(len(part.split(".")[1]) > 4 for part in (match[1], match[2]) if "." in part):
        # Like api.weather.gov: more than 4 decimals redirect to the rounded point.
        rounded = f"{_fmt(lat)},{_fmt(lon)}"
        return RedirectResponse(request.url.path.rsplit("/", 1)[0] + "/" + rounded, status_code=301)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return _nws_problem(
            400, "Invalid Parameter", f'Parameter "point" is invalid: {point}', "InvalidParameter"
        )
    if not _in_nws_coverage(lat, lon):
        detail = f"Unable to provide data for requested point {_fmt(lat)},{_fmt(lon)}"
        return _nws_problem(404, "Data Unavailable For Requested Point", detail, "InvalidPoint")
    return _respond(_points_document(lat, lon), media_type="application/geo+json")


@router.get(SAMPLE_NWS_PATH + "/gridpoints/{office}/{grid}/forecast")
async def nws_forecast(office: str, grid: str) -> Response:
    """NWS gridpoint forecast: recorded for Seattle's cell, templated for any other cell."""
    cell = re.fullmatch(r"(\d+),(\d+)", grid)
    location = _grid_location(office.upper(), int(cell[1]), int(cell[2])) if cell else None
    if location is None:
        return _nws_problem(404, "Not Found", f"Grid point {office}/{grid} does not exist.", "NotFound")
    if (office.upper(), grid) == ("SEW", "124,67"):
        return _respond(_load("nws_forecast_SEW_124_67.json"), media_type="application/geo+json")
    lat, lon, place = location
    return _respond(_templated_forecast(lat, lon, place), media_type="application/geo+json")


@router.get(SAMPLE_NWS_PATH + "/alerts/active")
async def nws_alerts(area: str | None = None) -> Response:
    """NWS active alerts of one state (``area``) or of all; recorded alerts, dated as active now."""
    now = datetime.now(UTC).replace(microsecond=0)
    document: dict[str, Any] = {"type": "FeatureCollection", "updated": now.isoformat()}
    if area is None:
        document |= {"title": "Current watches, warnings, and advisories", "features": []}
        for recorded in _load("nws_alerts.json")["areas"].values():
            document["features"] += copy.deepcopy(recorded["features"])
    elif area.upper() not in US_STATES or area != area.upper():
        return _nws_problem(400, "Bad Request", f'Parameter "area" is invalid: {area}', "BadRequest")
    else:
        recorded = _load("nws_alerts.json")["areas"].get(area)
        title = f"Current watches, warnings, and advisories for {US_STATES[area]}"
        document |= {"title": title, "features": copy.deepcopy(recorded["features"]) if recorded else []}
    for feature in document["features"]:  # recorded alerts read as active now
        props = feature["properties"]
        for key, hours in (("sent", -2), ("effective", -2), ("onset", -1), ("expires", 10), ("ends", 18)):
            props[key] = (now + timedelta(hours=hours)).isoformat()
    return _respond(document, media_type="application/geo+json")


# -- Open-Meteo ----------------------------------------------------------------------------------

_DailyValue = Callable[[_Weather, "_Units"], float | int]
_CurrentValue = Callable[[_Weather, "_Units", float], float | int]  # the float: how far into the day

_DAILY: dict[str, tuple[str, _DailyValue]] = {
    "weather_code": ("wmo code", lambda w, u: w["code"]),
    "temperature_2m_max": ("temp", lambda w, u: u.temp(w["high"])),
    "temperature_2m_min": ("temp", lambda w, u: u.temp(w["low"])),
    "precipitation_sum": ("precip", lambda w, u: u.precip(w["precipitation"])),
    "precipitation_probability_max": ("%", lambda w, u: w["chance"]),
    "wind_speed_10m_max": ("wind", lambda w, u: u.wind(w["wind"])),
}
_CURRENT: dict[str, tuple[str, _CurrentValue]] = {
    "temperature_2m": ("temp", lambda w, u, f: u.temp(w["low"] + (w["high"] - w["low"]) * f)),
    "apparent_temperature": ("temp", lambda w, u, f: u.temp(w["low"] + (w["high"] - w["low"]) * f - 1.5)),
    "relative_humidity_2m": ("%", lambda w, u, f: w["humidity"]),
    "weather_code": ("wmo code", lambda w, u, f: w["code"]),
    "wind_speed_10m": ("wind", lambda w, u, f: u.wind(w["wind"] * 0.6)),
    "precipitation": ("precip", lambda w, u, f: u.precip(w["precipitation"] / 24)),
}
_AIR = {
    "us_aqi": "USAQI",
    "european_aqi": "EAQI",
    "pm2_5": "μg/m³",
    "pm10": "μg/m³",
    "ozone": "μg/m³",
    "nitrogen_dioxide": "μg/m³",
    "sulphur_dioxide": "μg/m³",
    "carbon_monoxide": "μg/m³",
}


class _Units:
    """Open-Meteo's unit parameters: temperature_unit, wind_speed_unit, precipitation_unit."""

    def __init__(self, temperature: str, wind: str, precipitation: str) -> None:
        self.temperature, self.wind_unit, self.precipitation = temperature, wind, precipitation

    def label(self, kind: str) -> str:
        labels = {
            "temp": "°F" if self.temperature == "fahrenheit" else "°C",
            "wind": {"kmh": "km/h", "mph": "mp/h", "ms": "m/s", "kn": "kn"}[self.wind_unit],
            "precip": "inch" if self.precipitation == "inch" else "mm",
        }
        return labels.get(kind, kind)

    def temp(self, celsius: float) -> float:
        return round(celsius * 9 / 5 + 32, 1) if self.temperature == "fahrenheit" else round(celsius, 1)

    def wind(self, kmh: float) -> float:
        factor = {"kmh": 1.0, "mph": 1 / 1.609344, "ms": 1 / 3.6, "kn": 1 / 1.852}[self.wind_unit]
        return round(kmh * factor, 1)

    def precip(self, mm: float) -> float:
        return round(mm / 25.4, 2) if self.precipitation == "inch" else round(mm, 1)


def _check_coordinates(latitude: float, longitude: float) -> JSONResponse | None:
    if not -90 <= latitude <= 90:
        return _open_meteo_error(f"Latitude must be in range of -90 to 90°. Given: {latitude}.")
    if not -180 <= longitude <= 180:
        return _open_meteo_error(f"Longitude must be in range of -180 to 180°. Given: {longitude}.")
    return None


def _variables(value: str | None, known: dict[str, Any]) -> list[str] | JSONResponse:
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        return _open_meteo_error(f"Cannot initialize WeatherVariable from invalid String value {unknown[0]}")
    return names


def _location_header(
    latitude: float, longitude: float, tz_param: str | None
) -> tuple[dict[str, Any], tzinfo]:
    name, zone = _zone(latitude, longitude) if tz_param == "auto" else ("GMT", UTC)
    now = datetime.now(zone)
    offset = now.utcoffset() or timedelta()
    place = _nearest_place(latitude, longitude)
    header = {
        "latitude": round(latitude, 4),
        "longitude": round(longitude, 4),
        "generationtime_ms": 0.05,
        "utc_offset_seconds": int(offset.total_seconds()),
        "timezone": name,
        "timezone_abbreviation": now.tzname() or "GMT",
        "elevation": place["elevation"] if place else 0.0,
    }
    return header, zone


@router.get(SAMPLE_FORECAST_PATH + "/v1/forecast")
async def open_meteo_forecast(
    latitude: float,
    longitude: float,
    daily: str | None = None,
    current: str | None = None,
    forecast_days: int = 7,
    tz: str | None = Query(default=None, alias="timezone"),
    temperature_unit: str = "celsius",
    wind_speed_unit: str = "kmh",
    precipitation_unit: str = "mm",
) -> Response:
    """Open-Meteo forecast: deterministic synthetic ``daily`` and ``current`` values in the asked units."""
    error = _check_coordinates(latitude, longitude)
    if error:
        return error
    if not 0 <= forecast_days <= 16:
        return _open_meteo_error("Forecast days is invalid. Allowed range 0 to 16.")
    if wind_speed_unit not in ("kmh", "mph", "ms", "kn"):
        return _open_meteo_error(f"Invalid wind_speed_unit {wind_speed_unit}")
    daily_names = _variables(daily, _DAILY)
    if isinstance(daily_names, JSONResponse):
        return daily_names
    current_names = _variables(current, _CURRENT)
    if isinstance(current_names, JSONResponse):
        return current_names
    units = _Units(temperature_unit, wind_speed_unit, precipitation_unit)
    document, zone = _location_header(latitude, longitude, tz)
    now = datetime.now(zone)
    if current_names:
        weather = _day_weather(latitude, longitude, now.date())
        fraction = max(0.0, math.sin(math.pi * (now.hour - 6) / 16)) if 6 <= now.hour <= 22 else 0.0
        document["current_units"] = {"time": "iso8601", "interval": "seconds"} | {
            name: units.label(_CURRENT[name][0]) for name in current_names
        }
        document["current"] = {
            "time": now.replace(minute=now.minute // 15 * 15).strftime("%Y-%m-%dT%H:%M"),
            "interval": 900,
        } | {name: _CURRENT[name][1](weather, units, fraction) for name in current_names}
    if daily_names:
        days = [now.date() + timedelta(days=offset) for offset in range(forecast_days)]
        weathers = [_day_weather(latitude, longitude, day) for day in days]
        document["daily_units"] = {"time": "iso8601"} | {
            name: units.label(_DAILY[name][0]) for name in daily_names
        }
        document["daily"] = {"time": [day.isoformat() for day in days]} | {
            name: [_DAILY[name][1](weather, units) for weather in weathers] for name in daily_names
        }
    return _respond(document)


@router.get(SAMPLE_AIR_QUALITY_PATH + "/v1/air-quality")
async def open_meteo_air_quality(
    latitude: float,
    longitude: float,
    current: str | None = None,
    tz: str | None = Query(default=None, alias="timezone"),
) -> Response:
    """Open-Meteo air quality: synthetic ``current`` pollutant values for any coordinates."""
    error = _check_coordinates(latitude, longitude)
    if error:
        return error
    names = _variables(current, _AIR)
    if isinstance(names, JSONResponse):
        return names
    document, zone = _location_header(latitude, longitude, tz)
    now = datetime.now(zone)
    rng = _rng(latitude, longitude, now.date(), f"air{now.hour}")
    pm2_5 = round(rng.uniform(2, 30), 1)
    values = {
        "us_aqi": round(pm2_5 * 4.17 if pm2_5 <= 12 else 50 + (pm2_5 - 12) * 2.1),  # EPA PM2.5 bands
        "european_aqi": round(pm2_5 * 2.2),
        "pm2_5": pm2_5,
        "pm10": round(pm2_5 * rng.uniform(1.3, 2.0), 1),
        "ozone": round(rng.uniform(20, 110), 1),
        "nitrogen_dioxide": round(rng.uniform(2, 45), 1),
        "sulphur_dioxide": round(rng.uniform(0.5, 8), 1),
        "carbon_monoxide": round(rng.uniform(120, 400), 1),
    }
    if names:
        document["current_units"] = {"time": "iso8601", "interval": "seconds"} | {
            name: _AIR[name] for name in names
        }
        document["current"] = {"time": now.strftime("%Y-%m-%dT%H:00"), "interval": 3600} | {
            name: values[name] for name in names
        }
    return _respond(document)


def _fold(text: str) -> str:
    """Case- and accent-insensitive form for name matching ("reykjavik" finds "Reykjavík")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


@router.get(SAMPLE_GEOCODING_PATH + "/v1/search")
async def open_meteo_geocoding(
    name: str = "", count: int = 10, language: str = "en", format: str = "json"
) -> Response:
    """Open-Meteo geocoding: gazetteer places whose names start with ``name``, exact names first."""
    if not 1 <= count <= 100:
        return _open_meteo_error("Parameter count must be between 1 and 100.")
    document: dict[str, Any] = {"generationtime_ms": 0.3}
    query = _fold(name.strip())
    if len(query) >= 2:  # like the real API: shorter names return no results
        matches = [p for p in _places() if _fold(p["name"]).startswith(query)]
        matches.sort(key=lambda p: (_fold(p["name"]) != query, -p["population"]))
        if matches:
            document["results"] = [{k: v for k, v in p.items() if k != "nws"} for p in matches[:count]]
    return _respond(document)
