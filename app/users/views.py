from flask import Blueprint
bp = Blueprint("users_views", __name__)
