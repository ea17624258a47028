from flask import Blueprint
bp = Blueprint("jobs_views", __name__)
